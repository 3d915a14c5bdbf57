"""``python -m modeling_moleblend.cli COMMAND ...`` (and ``accelerate launch -m modeling_moleblend.cli ...``)."""

import sys

from .main import main

sys.exit(main())
