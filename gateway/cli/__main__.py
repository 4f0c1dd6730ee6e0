"""``python -m gateway.cli`` runs the ``pointsman`` command (through its entry point, ``gateway.command``; the
package is imported first here, so ``serve``'s collector pause starts after the imports)."""

from __future__ import annotations

from gateway.command import main

raise SystemExit(main())
