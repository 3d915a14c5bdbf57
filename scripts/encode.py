#!/usr/bin/env python
"""`moleblend encode` as a script, for `accelerate launch scripts/encode.py`; see `moleblend encode --help`."""

import sys

from modeling_moleblend.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["encode", *sys.argv[1:]]))
