"""Secrets and personal data planted in requests, and where they must not show up again."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# name -> (the planted text, the placeholder that must replace it)
PLANTED: dict[str, tuple[str, str]] = {
    "email": ("jane.doe+billing@example.com", "[EMAIL]"),
    "phone": ("+1 415-555-0132", "[PHONE]"),
    "card": ("4111 1111 1111 1111", "[CREDIT_CARD]"),
    "openai_key": ("sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "[API_KEY]"),
    "aws_key": ("AKIAIOSFODNN7EXAMPLE", "[API_KEY]"),
    "password": ("hunter2hunter2", "[API_KEY]"),
    "jwt_bearer": (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "[BEARER_TOKEN]",
    ),
    "ipv4": ("203.0.113.42", "[IP_ADDRESS]"),
    "ipv6": ("2001:db8::8a2e:370:7334", "[IP_ADDRESS]"),
    "employee_id": ("EMP-482913", "[EMPLOYEE_ID]"),
}
SECRETS = [v for v, _ in PLANTED.values()]


def planted_messages() -> list[dict[str, Any]]:
    """A conversation carrying every planted item: in the system prompt, the user turn, a previous tool call's
    arguments (JSON inside a string) and a tool result."""
    return [
        {"role": "system", "content": f"Internal note: the service key is {PLANTED['openai_key'][0]}."},
        {
            "role": "user",
            "content": (
                f"Hi, I'm Jane ({PLANTED['email'][0]}, phone {PLANTED['phone'][0]}). My card {PLANTED['card'][0]} "
                f"was charged twice. I log in from {PLANTED['ipv4'][0]} and {PLANTED['ipv6'][0]}; "
                f"my badge is {PLANTED['employee_id'][0]}."
            ),
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "lookup_account",
                        "arguments": f'{{"email": "{PLANTED["email"][0]}", "aws": "{PLANTED["aws_key"][0]}"}}',
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": f"account ok; db password={PLANTED['password'][0]}; "
            f"Authorization: Bearer {PLANTED['jwt_bearer'][0]}",
        },
        {"role": "user", "content": "Please refund the second charge."},
    ]


def leaked(texts: Iterable[str]) -> list[str]:
    """The planted items that appear in any of ``texts``."""
    joined = "\n".join(texts)
    return [name for name, (value, _) in PLANTED.items() if value in joined]
