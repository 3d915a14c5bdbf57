#!/usr/bin/env python
"""`moleblend export` as a script (its old name); see `moleblend export --help`."""

import sys

from modeling_moleblend.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
