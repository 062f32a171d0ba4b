"""``python -m memtasks.cli`` (as ``accelerate launch -m memtasks.cli eval ...`` runs it)."""

import sys

from memtasks.cli import main

sys.exit(main())
