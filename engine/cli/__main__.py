"""`python -m dyadic.engine.cli ...`, as the `dyadic` console script."""

import sys

from .main import main

sys.exit(main())
