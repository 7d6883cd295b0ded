"""``python -m looplm.convert``: the same as ``looplm convert``."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
