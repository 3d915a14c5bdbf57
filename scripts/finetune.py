#!/usr/bin/env python
"""`moleblend finetune` as a script, for `accelerate launch scripts/finetune.py`; see `moleblend finetune --help`."""

import sys

from modeling_moleblend.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["finetune", *sys.argv[1:]]))
