"""``python -m sos``: the same command as the ``sos`` console script."""

from __future__ import annotations

from sos.cli import main

raise SystemExit(main())
