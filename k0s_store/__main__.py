"""`python -m k0s_store serve ...`: the same as the `k0s-store` script."""

import sys

from k0s_store.cli import main

sys.exit(main())
