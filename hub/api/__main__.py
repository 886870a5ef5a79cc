"""``python -m hub.api [--config FILE] [-v]``: the same as ``streamflow api``."""

from __future__ import annotations

import sys

from hub.cli import main

if __name__ == "__main__":
    main([*sys.argv[1:], "api"])
