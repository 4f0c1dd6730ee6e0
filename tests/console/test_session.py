"""``gateway.console.session``: signed console sessions and their CSRF tokens."""

from __future__ import annotations

from gateway.console.session import Sessions, login_role

ADMIN, RO = "sk-admin-0123456789", "ro-console-0123456789"


def test_an_issued_token_reads_back_as_its_role() -> None:
    s = Sessions(ADMIN, RO, ttl_s=60)
    got = s.read(s.issue("read_only", now=1000), now=1001)
    assert got is not None and got.role == "read_only" and not got.can_change


def test_an_expired_token_is_refused() -> None:
    s = Sessions(ADMIN, RO, ttl_s=60)
    assert s.read(s.issue("admin", now=1000), now=1061) is None


def test_a_tampered_token_is_refused() -> None:
    s = Sessions(ADMIN, RO, ttl_s=60)
    body, sig = s.issue("read_only", now=1000).split(".")
    forged = Sessions(ADMIN, RO, ttl_s=60).issue("admin", now=1000).split(".")[0]
    assert s.read(f"{forged}.{sig}", now=1001) is None
    assert s.read(f"{body}.{sig[:-2]}xx", now=1001) is None
    assert s.read("garbage", now=1001) is None


def test_changing_a_key_ends_every_session() -> None:
    token = Sessions(ADMIN, RO, ttl_s=60).issue("admin", now=1000)
    assert Sessions(ADMIN + "x", RO, ttl_s=60).read(token, now=1001) is None
    assert Sessions(ADMIN, None, ttl_s=60).read(token, now=1001) is None


def test_the_csrf_token_belongs_to_its_session() -> None:
    s = Sessions(ADMIN, RO, ttl_s=60)
    a = s.read(s.issue("admin", now=1000), now=1001)
    b = s.read(s.issue("admin", now=1000), now=1001)
    assert a is not None and b is not None
    assert s.csrf_ok(a, s.csrf(a))
    assert not s.csrf_ok(a, s.csrf(b))
    assert not s.csrf_ok(a, None)


def test_login_role_knows_both_keys_and_nothing_else() -> None:
    assert login_role(ADMIN, RO, ADMIN) == "admin"
    assert login_role(ADMIN, RO, RO) == "read_only"
    assert login_role(ADMIN, None, RO) is None
    assert login_role(ADMIN, RO, "") is None
