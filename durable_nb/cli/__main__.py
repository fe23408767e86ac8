"""``python -m durable_nb.cli``: the same as the ``durable-nb`` command."""

import sys

from .parser import main

sys.exit(main())
