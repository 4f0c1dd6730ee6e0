"""Helpers for the reliability suite: OpenAI (and Anthropic) error shape, ledger rows, process resources, secret scans."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.conftest import ADMIN_KEY, CLIENT_KEY

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CLIENT = {"authorization": f"Bearer {CLIENT_KEY}"}
MSG = [{"role": "user", "content": "hello"}]


def openai_error(resp: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of an OpenAI-shaped error response; fails the test if the shape is wrong."""
    assert resp.headers.get("content-type", "").startswith("application/json"), (
        resp.status_code,
        resp.headers,
    )
    doc = orjson.loads(resp.content)
    assert isinstance(doc, dict) and set(doc) == {"error"}, doc
    err = doc["error"]
    assert isinstance(err, dict), doc
    assert {"message", "type", "param", "code"} <= set(err), err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    assert err["param"] is None or isinstance(err["param"], str), err
    assert err["code"] is None or isinstance(err["code"], str), err
    return err


def is_anthropic_error(resp: httpx.Response) -> bool:
    """Whether ``resp`` is an error in Anthropic's shape (``{"type": "error", "error": {"type", "message"}}``)."""
    try:
        doc = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return False
    err = doc.get("error") if isinstance(doc, dict) else None
    return (
        resp.headers.get("content-type", "").startswith("application/json")
        and set(doc) == {"type", "error"}
        and doc["type"] == "error"
        and isinstance(err, dict)
        and set(err) == {"type", "message"}
        and all(isinstance(err[k], str) and err[k] for k in err)
    )


def is_openai_error(resp: httpx.Response) -> bool:
    try:
        openai_error(resp)
    except (AssertionError, orjson.JSONDecodeError):
        return False
    return True


def wait_for(fn: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.time() + timeout
    last: Any = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def flush_ledger(url: str) -> None:
    """``/admin/spend`` waits until every finished request is written to the ledger."""
    r = httpx.get(url + "/admin/spend", headers=ADMIN, timeout=30)
    assert r.status_code == 200, r.text


def ledger_rows(data_dir: Path | str, request_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    path = Path(data_dir) / "ledger.sqlite3"
    if not path.exists():
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in con.execute("SELECT * FROM requests ORDER BY id")]
    finally:
        con.close()
    if request_ids is not None:
        wanted = set(request_ids)
        rows = [r for r in rows if r["request_id"] in wanted]
    return rows


def rows_for(url: str, data_dir: Path | str, rid: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The ledger rows of one request id, once there are any (streams are recorded after they end)."""

    def get() -> list[dict[str, Any]]:
        flush_ledger(url)
        return ledger_rows(data_dir, [rid])

    wait_for(get, timeout)
    time.sleep(0.05)
    flush_ledger(url)
    return ledger_rows(data_dir, [rid])


# -- process resources ---------------------------------------------------------------------------------------
def proc_rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def tcp_connections_to(pid: int, port: int) -> int:
    """Established TCP connections the process holds to a loopback ``port`` (from /proc/<pid>/net/tcp)."""
    inodes = _socket_inodes(pid)
    n = 0
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            remote_port = int(f[2].rsplit(":", 1)[1], 16)
            if remote_port == port and f[3] == "01" and f[9] in inodes:  # 01 = ESTABLISHED
                n += 1
    return n


def debug_process(url: str) -> dict[str, Any]:
    r = httpx.get(url + "/admin/debug/process", headers=ADMIN, timeout=30)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


# -- secrets ---------------------------------------------------------------------------------------------------
def find_secrets(text: str | bytes, secrets: Iterable[str]) -> list[str]:
    """The secrets (or a 12-character prefix of one: a truncated echo is a leak too) found in ``text``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = []
    for s in secrets:
        probes = {s, s[:12]} if len(s) > 12 else {s}
        if any(p in text for p in probes):
            found.append(s)
    return found


def reset_peak_rss(pid: int) -> int:
    """Reset the process's peak resident memory to its current one (Linux ``clear_refs``); returns it."""
    with open(f"/proc/{pid}/clear_refs", "w") as fh:
        fh.write("5")
    return proc_peak_rss(pid)


def proc_peak_rss(pid: int) -> int:
    """The process's peak resident memory (``VmHWM``) since it started or since ``reset_peak_rss``: what a
    burst cost, even if it was freed since."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def proc_cpu_seconds(pid: int) -> float:
    """CPU time the process has used (user + system): work done, whatever else the machine is busy with."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


INFERENCE = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"]
"""The inference endpoints hostile inputs are sent to."""


def post(
    client: httpx.Client, url: str, content: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST ``content`` as JSON (with the client key unless ``headers`` are given) and read the whole answer."""
    h = {"content-type": "application/json", **(headers if headers is not None else CLIENT)}
    with client.stream("POST", url, content=content, headers=h) as r:
        r.read()
    return r


def auth_for(path: str) -> dict[str, str]:
    """The admin key for ``/admin`` paths, the client key otherwise."""
    return ADMIN if path.startswith("/admin") else CLIENT


def raw_exchange(port: int, data: bytes, timeout: float = 15) -> bytes:
    """Send raw bytes on a fresh connection and return everything the gateway answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before it has read everything
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass
    return out
