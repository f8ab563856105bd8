"""``python -m k0s_node``: the ``k0s-node`` command."""

import sys

from k0s_node.cli import main

sys.exit(main())
