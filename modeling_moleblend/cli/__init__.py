"""The ``moleblend`` command line (``moleblend --help``); each subcommand is one module here."""

from .main import SUBCOMMANDS, build_parser, main

__all__ = ["SUBCOMMANDS", "build_parser", "main"]
