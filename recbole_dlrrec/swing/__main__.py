"""``python -m recbole_dlrrec.swing``: the contrastive neighbour cache audit (recbole_dlrrec/cli/swing.py).

Only run as a program; nothing in the package imports this module, so swing/ itself stays
below runtime/ and cli/."""
import sys

from recbole_dlrrec.cli.swing import main

sys.exit(main())
