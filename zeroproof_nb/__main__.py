"""``python -m zeroproof_nb``: the ``zeroproof-nb`` command."""
import sys

from .cli import main

sys.exit(main())
