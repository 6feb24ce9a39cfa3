"""``python -m mnesis`` runs the command line."""

import sys

from mnesis.cli.main import main

sys.exit(main())
