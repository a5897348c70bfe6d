"""``python -m cli``: the ``mlship`` command (the container entrypoint uses it)."""

import sys

from cli.main import main

sys.exit(main())
