"""`python -m sdo`: see sdo.cli."""

import sys

from .cli import main

sys.exit(main())
