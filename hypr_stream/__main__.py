"""``python -m hypr_stream``: the same as the ``hypr-stream`` command."""

import sys

from .cli import main

sys.exit(main())
