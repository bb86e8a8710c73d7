"""``python -m dlcore.data fetch-mnist``."""

import sys

from dlcore.data.mnist import _main

sys.exit(_main())
