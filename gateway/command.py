"""The ``pointsman`` command's entry point: what a process does before it imports the gateway.

``serve`` starts with the cyclic collector paused (``gateway.heap``: the start-up's collections cost ~45 ms of a
~0.55 s cold start), and with pydantic's plugins off unless ``PYDANTIC_DISABLE_PLUGINS`` is set: looking for them
scans every installed distribution's entry points (~15 ms of a start), and none has anything to do in a gateway.
Both must happen before ``gateway.cli`` is imported, which is why this module imports nothing of the gateway's
first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        from gateway.heap import pause_collection

        pause_collection()
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from gateway.cli import main as run

    return run(args)
