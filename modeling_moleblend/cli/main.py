"""The ``moleblend`` command: one subcommand per module of this package.

A subcommand is a module with ``NAME``, ``HELP`` (one line), ``DESCRIPTION`` (what it does, with examples),
``add_arguments(parser)`` and ``run(args) -> int``; adding one is adding its module to ``SUBCOMMANDS``.

Errors in the user's input (a missing file or column, bad arguments, an unreadable molecule under
``errors="raise"``) print one message and exit with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__
from .common import HelpFormatter

SUBCOMMANDS = ("finetune", "predict", "encode", "pretrain", "featurize", "export", "hpopt", "explain", "experiment")
EXIT_USAGE = 2


def _module(name: str):
    return importlib.import_module(f".{name}", __package__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moleblend",
        description="MoleBlend: multimodal (2D graph + 3D structure) molecular Transformers for Hugging Face.\n\n"
        "  moleblend finetune --train_file data.csv --label_columns y --output_dir out/\n"
        "  moleblend predict --model_name_or_path out/ --input new.csv --output predictions.csv\n\n"
        "Run `moleblend COMMAND --help` for a command's options.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"moleblend {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = _module(name)
        sub = commands.add_parser(
            module.NAME, help=module.HELP, description=module.DESCRIPTION, formatter_class=HelpFormatter
        )
        module.add_arguments(sub)
        sub.add_argument("--debug", action="store_true", help="show the traceback of an error")
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
    )
    from ..data import InputError
    from ..tokenization import MissingLabelTagError, MoleculeError

    try:
        return int(args._run(args) or 0)
    except (InputError, MoleculeError, MissingLabelTagError) as error:
        if args.debug:
            raise
        print(f"moleblend {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
