"""``python -m pipelines ARGS``: the ``trackstream`` command, for a checkout on ``PYTHONPATH`` or a venv whose
``bin/`` is not on ``PATH``."""

import sys

from pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main())
