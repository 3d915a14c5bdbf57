"""The ``moleblend`` command line (``moleblend --help``): ``main.py`` holds the registry, and each subcommand is
one module here with its arguments and a ``run``."""
