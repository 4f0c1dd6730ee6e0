"""The ``pointsman`` command line: ``serve`` and ``check-config`` (main), and the admin-API clients.

One module per subcommand group (routes, spend, shadow, dataset, vllm); ``admin_api`` holds how they talk to
the admin API (URL, admin key, errors, tables).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``pointsman`` command. ``serve`` starts with the cyclic collector paused, before anything is
    imported (``gateway.heap``: the start-up's collections cost ~45 ms), and with pydantic's plugins off unless
    ``PYDANTIC_DISABLE_PLUGINS`` is set: looking for them scans every installed distribution's entry points (~15
    ms of a start), and none has anything to do in a gateway."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        from gateway.heap import pause_collection

        pause_collection()
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from gateway.cli.main import main as run

    return run(args)


__all__ = ["main"]
