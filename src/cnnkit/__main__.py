"""``python -m cnnkit`` runs the same CLI as the ``cnnkit`` command."""

import sys

from cnnkit.cli import main

sys.exit(main())
