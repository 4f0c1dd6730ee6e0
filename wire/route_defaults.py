"""A route's ``defaults`` as a request of each endpoint takes them.

A route's ``defaults`` are request parameters filled in when the client did not send them. They are written for
generation, and the endpoints name their parameters differently, so each endpoint gets its own form, made once
when the config is compiled:

- only the generating endpoints (``chat/completions``, ``completions``, ``responses``, ``messages``) get
  defaults; ``embeddings`` and ``messages/count_tokens`` get none (an embeddings or token-counting request given
  ``max_tokens`` or ``temperature`` is refused by the providers' APIs);
- the output limit is one default, whatever the route calls it (``max_tokens``, ``max_completion_tokens`` or
  ``max_output_tokens``): it is written under the endpoint's own member (``max_output_tokens`` for the Responses
  API, ``max_tokens`` for completions and messages; on chat completions the route's own name when it is one of
  chat's, else ``max_tokens``), and added only when the client named no output limit of that endpoint (a client's
  ``max_completion_tokens`` is not joined by the route's ``max_tokens``). A route naming the limit twice keeps the
  first name it gives that the endpoint takes, else the first it gives.

The upstream call (``routing.upstream_call``) adds them; admission (``accounting.reservation``) sizes a request's
reservation with the same members.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from wire.endpoints import OUTPUT_LIMIT

LIMIT_NAMES = ("max_tokens", "max_completion_tokens", "max_output_tokens")
"""Every name of the output limit, in the order a route's default is read when the endpoint takes none of those
the route gives."""
NO_DEFAULTS: Mapping[str, Any] = MappingProxyType({})
"""What an endpoint that takes no defaults gets."""


def per_endpoint(defaults: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``defaults`` in the form each generating endpoint takes (see the module docstring); an endpoint missing
    from the result takes none."""
    if not defaults:
        return {}
    return {endpoint: for_endpoint(endpoint, defaults) for endpoint in OUTPUT_LIMIT}


def for_endpoint(endpoint: str, defaults: Mapping[str, Any]) -> Mapping[str, Any]:
    """``defaults`` as a request of ``endpoint`` takes them, in the route's order (the output limit where the route
    first names one)."""
    own = OUTPUT_LIMIT.get(endpoint)
    if own is None or not defaults:
        return NO_DEFAULTS
    given = [k for k in defaults if k in LIMIT_NAMES]
    out: dict[str, Any] = {}
    for k, v in defaults.items():
        if k not in LIMIT_NAMES:
            out[k] = v
        elif k == given[0]:
            name = next((g for g in given if g in own), None)
            out[name or own[-1]] = defaults[name or k]
    return MappingProxyType(out)


def added(endpoint: str, doc: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The members ``defaults`` (already in ``endpoint``'s form, ``for_endpoint``) add to ``doc``: those it lacks,
    the output limit only when ``doc`` names none of ``endpoint``'s."""
    out: dict[str, Any] = {}
    limits = OUTPUT_LIMIT.get(endpoint, ())
    for k, v in defaults.items():
        if k in doc:
            continue
        if k in limits and any(f in doc for f in limits):
            continue
        out[k] = v
    return out
