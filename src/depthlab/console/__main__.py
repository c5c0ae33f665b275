"""``python -m depthlab.console``: the ``depthlab`` console command without its script."""

import sys

from depthlab.console import main

sys.exit(main())
