"""``python -m fwmrl`` is the ``fwmrl`` command."""

import sys

from fwmrl.cli import main

sys.exit(main())
