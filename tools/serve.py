"""Launch the medgym tool server: ``python tools/serve.py --port 8000 --workers 4``.

Every option can also come from ``MEDGYM_*`` environment variables (see docs/serving.md).
"""

from __future__ import annotations

import sys

from medgym.cli import app

if __name__ == "__main__":
    app(["serve", *sys.argv[1:]])
