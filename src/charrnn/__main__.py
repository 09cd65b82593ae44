"""``python -m charrnn`` runs the command line (and lets ``torchrun -m charrnn`` work)."""

import sys

from charrnn.cli import main

sys.exit(main())
