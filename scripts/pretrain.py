#!/usr/bin/env python
"""`moleblend pretrain` as a script, for `accelerate launch scripts/pretrain.py`; see `moleblend pretrain --help`."""

import sys

from modeling_moleblend.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
