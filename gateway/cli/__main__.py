"""``python -m gateway.cli`` is the ``pointsman`` command."""

from __future__ import annotations

from gateway.cli.main import main

raise SystemExit(main())
