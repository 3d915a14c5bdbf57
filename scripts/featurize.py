#!/usr/bin/env python
"""`moleblend featurize` as a script, for `accelerate launch scripts/featurize.py`; see `moleblend featurize --help`."""

import sys

from modeling_moleblend.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["featurize", *sys.argv[1:]]))
