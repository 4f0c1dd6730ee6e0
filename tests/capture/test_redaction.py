"""The redaction corpus: every built-in detector on the forms it must catch, and text it must leave alone."""

from __future__ import annotations

import json

import orjson
import pytest

from accounting.capture.config import RedactPattern
from accounting.capture.redact import Redactor, build_redactor, luhn_ok
from tests.capture.planted import PLANTED, leaked, planted_messages

CORPUS: list[tuple[str, str, str]] = [
    # (detector, text containing the item, the item)
    ("email", "write to {} today", "jane.doe@example.com"),
    ("email", "cc: {}", "ops+alerts@mail.example.co.uk"),
    ("email", "<{}>", "X_Y-9@sub.domain.io"),
    ("phone", "call {} now", "+1 415-555-0132"),
    ("phone", "office: {}", "(415) 555-0199"),
    ("phone", "tel {}", "415.555.0188"),
    ("phone", "London {}", "+44 20 7946 0958"),
    ("phone", "Paris {}", "+33 1 42 68 53 00"),
    ("credit_card", "visa {} exp 12/29", "4111 1111 1111 1111"),
    ("credit_card", "mastercard {}", "5500-0000-0000-0004"),
    ("credit_card", "amex {}", "378282246310005"),
    ("credit_card", "card:{}", "6011111111111117"),
    ("api_key", "key {}", "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("api_key", "key {}", "sk-abcdefghijklmnopqrstuvwxyz012345"),
    ("api_key", "anthropic {}", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv-0123456789"),
    ("api_key", "aws {}", "AKIAIOSFODNN7EXAMPLE"),
    ("api_key", "github {}", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("api_key", "slack {}", "xoxb-1234567890-abcdefghij"),
    ("api_key", "google {}", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    ("api_key", "stripe {}", "sk_live_abcdefghijklmnop1234"),
    ("api_key", "hf {}", "hf_abcdefghijklmnopqrstuvwxyzABCDEF"),
    (
        "api_key",
        "jwt {}",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    ("api_key", "{}", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"),
    ("api_key", 'api_key="{}"', "zx81-secret-value"),
    ("api_key", "DB_PASSWORD={}", "correct-horse-battery"),
    ("api_key", "client_secret: {}", "c0ffee-c0ffee-c0ffee"),
    ("bearer_token", "Authorization: Bearer {}", "abc123.def456-ghi789"),
    ("bearer_token", "Authorization: Basic {}", "dXNlcjpwYXNzd29yZA=="),
    ("ip", "from {} via proxy", "203.0.113.42"),
    ("ip", "host {}", "10.0.0.1"),
    ("ip", "v6 {} ok", "2001:db8::8a2e:370:7334"),
    ("ip", "loopback {}", "::1"),
    ("ip", "full {}", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
]
PLACEHOLDER = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "credit_card": "[CREDIT_CARD]",
    "api_key": "[API_KEY]",
    "bearer_token": "[BEARER_TOKEN]",
    "ip": "[IP_ADDRESS]",
}

INVALID_CARDS = ["4111 1111 1111 1112", "5500-0000-0000-0005", "378282246310006", "1234567812345678"]

LEFT_ALONE = [
    "The meeting is on 2024-01-15 at 12:30:45 in room 101.",
    "Version 1.2.3.4.5 shipped; pi is 3.14159; order 1234567.",
    "A ratio of 16:9, std::vector<int>, and a C++ Foo::bar call.",
    "Basic understanding of bearer instruments is assumed.",
    "max_tokens=100 and monkey=banana123 and bypass: something",
    "An IP-looking version 256.1.1.1 and 1.2.3 are not addresses.",
    "The year 2024 had 365 days and 8760 hours.",
]


@pytest.mark.parametrize(
    ("detector", "template", "item"), CORPUS, ids=[f"{d}-{i}" for i, (d, _, _) in enumerate(CORPUS)]
)
def test_detector_replaces_item_with_its_placeholder(detector: str, template: str, item: str) -> None:
    out = Redactor().redact(template.format(item))
    assert item not in out
    assert PLACEHOLDER[detector] in out


@pytest.mark.parametrize("number", INVALID_CARDS)
def test_luhn_rejects_invalid_card_numbers(number: str) -> None:
    assert not luhn_ok(number.replace(" ", "").replace("-", ""))
    assert Redactor().redact(f"card {number} declined") == f"card {number} declined"


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().redact(text) == text


def test_configured_regex_gets_its_own_placeholder() -> None:
    r = Redactor(patterns=[RedactPattern(name="employee_id", pattern=r"EMP-\d{6}")])
    assert r.redact("badge EMP-482913 entered") == "badge [EMPLOYEE_ID] entered"


def test_counts_are_by_placeholder() -> None:
    counts: dict[str, int] = {}
    Redactor().redact("a@b.io, c@d.io and 10.0.0.1", counts)
    assert counts == {"EMAIL": 2, "IP_ADDRESS": 1}


def test_secrets_are_redacted_even_when_a_policy_lists_only_pii_detectors() -> None:
    r = build_redactor(["email"], {})
    out = r.redact("mail a@b.io with key sk-abcdefghijklmnopqrstuvwxyz012345")
    assert out == "mail [EMAIL] with key [API_KEY]"


def test_a_policy_can_leave_out_pii_detectors() -> None:
    r = build_redactor(["email"], {})
    assert r.redact("from 10.0.0.1") == "from 10.0.0.1"


def test_json_redaction_keeps_structure_and_tool_arguments_stay_json() -> None:
    named = {"employee_id": RedactPattern(name="employee_id", pattern=r"EMP-\d{6}")}
    r = build_redactor(["builtin", "employee_id"], named)
    doc = {"model": "gpt-4o-mini", "messages": planted_messages()}
    out = r.redact_json(doc)
    assert [m["role"] for m in out["messages"]] == [m["role"] for m in doc["messages"]]
    args = json.loads(out["messages"][2]["tool_calls"][0]["function"]["arguments"])
    assert args == {"email": "[EMAIL]", "aws": "[API_KEY]"}
    assert leaked([orjson.dumps(out).decode()]) == []


def test_every_planted_item_becomes_its_placeholder() -> None:
    named = {"employee_id": RedactPattern(name="employee_id", pattern=r"EMP-\d{6}")}
    text = orjson.dumps(
        build_redactor(["builtin", "employee_id"], named).redact_json(planted_messages())
    ).decode()
    assert {p for _, p in PLANTED.values()} <= {p for p in PLACEHOLDER.values() if p in text} | {
        "[EMPLOYEE_ID]"
    }
    assert "[EMPLOYEE_ID]" in text
