"""The ``pointsman`` command line: ``serve`` and ``check-config`` (main), and the admin-API clients.

One module per subcommand group (routes, spend, shadow, dataset, vllm); ``admin_api`` holds how they talk to
the admin API (URL, admin key, errors, tables).
"""

from __future__ import annotations

from gateway.cli.main import main

__all__ = ["main"]
