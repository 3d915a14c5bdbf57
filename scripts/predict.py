#!/usr/bin/env python
"""`moleblend predict` as a script, for `accelerate launch scripts/predict.py`; see `moleblend predict --help`."""

import sys

from modeling_moleblend.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
