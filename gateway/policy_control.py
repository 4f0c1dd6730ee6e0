"""The live policy (routes, models, backends, client keys): stored, versioned, changed atomically, synced.

- At startup the stored policy is loaded; the config file's policy is imported as a new version when the file
  changed since it was last imported (so admin changes survive a restart with an unchanged file, and an edited
  file wins over them).
- A change (admin API) is applied to the newest stored document, validated exactly like the config file
  (``validate_document``: errors carry their path, e.g. ``routes[2].targets[0].weight``), appended as a new
  version (compare-and-set on the head), then installed by ``LiveRuntime.swap``; in-flight
  requests finish on the runtime they started with.
- A client key secret that a change removes (the key deleted, or its secret rotated away) is **revoked**: its
  digest is recorded with the version, in the same transaction, and a revoked secret is never loaded again —
  whatever a later config file or version says (``gateway.revocations``: a key that holds one is left out of
  the runtime, with a warning naming it). Lookup stays a dict lookup: revoked keys are simply not in the ring.
- The revocations outlive a store outage: each time the gateway learns the store's revocations (opening it, a
  sync to a newer head, its own change) it keeps a copy in ``<data_dir>/revoked_keys.json``
  (``gateway.revocation_copy``: digests only). When the store cannot be read at startup, the config file's
  policy is served without the keys that copy says hold a revoked secret (each named in a warning); with no
  copy (nothing learned from a store yet: a first start) the file's keys are loaded as they are, with a warning.
- A background task follows the store (Redis pub/sub, plus a head-version check every
  ``routing.sync_interval_s``), so other workers and replicas install the change too.

What is stored: client keys (and revoked client key secrets) only as SHA-256 digests; a backend's ``api_key`` and
``headers`` values (which may carry a credential, e.g. Azure's ``api-key``) that come from the config file as the
marker ``${config}`` (resolved from the file when loaded), never the values themselves. The credentials of
backends created or changed through the admin API (a value sent, not ``***``) are stored as given. What is shown
is decided by ``gateway.credentials`` (``***``).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import os
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import orjson

from accounting.accountant import Accountant
from gateway.config import ConfigError, GatewayConfig, validate_document
from gateway.errors import ApiError, to_api_error
from gateway.keys import hash_key
from gateway.revocation_copy import RevocationCopy
from gateway.revocations import dropped_by_import, refused, removed_secrets, without_revoked
from gateway.runtime import Runtime
from gateway.startup_report import describe_source
from routing.models import ResolvedModel
from routing.policy import CostOf
from routing.store import (
    PolicyStore,
    PolicyVersion,
    Revocation,
    SQLitePolicyStore,
    StoreUnavailable,
    VersionConflict,
    dumps,
)
from wire.tasks import cancel_requested

log = logging.getLogger("pointsman.policy")

SECTIONS = ("routes", "models", "backends", "keys")
FROM_CONFIG = "${config}"
"""Stored in place of a backend credential that lives in the config file."""
SEED_ENV = "POINTSMAN_ROUTING_SEED"


def routing_rng(cfg: GatewayConfig) -> random.Random:
    """The rng for weighted choices: seeded by ``routing.seed`` or ``POINTSMAN_ROUTING_SEED`` when given."""
    seed = cfg.routing.seed
    if seed is None and os.environ.get(SEED_ENV):
        seed = int(os.environ[SEED_ENV])
    return random.Random(seed)


def cost_lookup(accountant: Accountant) -> CostOf:
    """Prices for the ``cheapest`` strategy: USD per input token + per output token, from the accountant's
    price table (which follows config swaps); None for an unpriced model."""

    def cost_of(m: ResolvedModel) -> Decimal | None:
        p = accountant.model_price(m.backend, m.upstream_model, m.name)
        if p is None:
            return None
        total: Decimal = p.input + p.output
        return total

    return cost_of


def policy_doc(cfg: GatewayConfig) -> dict[str, Any]:
    """The policy sections of a config file, as stored: keys hashed, backend credentials replaced by a marker."""
    raw = cfg.model_dump(mode="json", include=set(SECTIONS), exclude_defaults=True)
    doc: dict[str, Any] = {
        "routes": raw.get("routes", []),
        "models": raw.get("models", {}),
        "backends": raw.get("backends", {}),
        "keys": raw.get("keys", []),
    }
    for k in doc["keys"]:
        if "key" in k:
            k["key_sha256"] = hash_key(k.pop("key"))
    for b in doc["backends"].values():
        if b.get("api_key"):
            b["api_key"] = FROM_CONFIG
        if b.get("headers"):  # any header value may be a credential (``gateway.credentials``)
            b["headers"] = dict.fromkeys(b["headers"], FROM_CONFIG)
    return doc


def doc_hash(doc: dict[str, Any]) -> str:
    return hashlib.sha256(dumps(doc).encode()).hexdigest()


def invalid(exc: ConfigError) -> ApiError:
    """400 naming every failing path; ``param`` is the first."""
    path, msg = exc.problems[0] if exc.problems else ("", "invalid policy")
    message = f"{path}: {msg}" if path else msg
    err = ApiError(400, message, "invalid_request_error", "invalid_policy", path or None)
    err.raw_body = orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": path or None,
                "code": "invalid_policy",
                "problems": [{"path": p, "message": m} for p, m in exc.problems],
            }
        }
    )
    return err


Mutation = Callable[[dict[str, Any]], None]


class RuntimeInstaller(Protocol):
    """Where policy versions are put in force (``gateway.live_runtime.LiveRuntime``)."""

    @property
    def runtime(self) -> Runtime: ...

    def build(self, cfg: GatewayConfig, version: int) -> Runtime: ...

    async def swap(self, runtime: Runtime) -> None: ...


class PolicyControl:
    def __init__(self, file_cfg: GatewayConfig, live: RuntimeInstaller) -> None:
        self.live = live
        self.file_cfg = file_cfg
        self.settings = file_cfg.routing
        self.store: PolicyStore | None = None
        self.lock = asyncio.Lock()
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._bad_version = 0
        self.revoked: dict[str, Revocation] = {}
        """Revoked client key secrets by digest, as the store had them when the version in force was read (or as
        the local copy had them, while the store could not be read since startup)."""
        self.copy = RevocationCopy(file_cfg.server.data_dir)
        self._lost_named: frozenset[str] = frozenset()
        """The digests the last warning about revocations missing from the store named (said once per set)."""

    # -- lifecycle -------------------------------------------------------------------------------------
    def make_store(self) -> PolicyStore:
        cfg = self.file_cfg
        if cfg.database.shared_dsn:
            from routing.store_pg import PostgresPolicyStore  # only with the database configured

            return PostgresPolicyStore(cfg.database.shared_dsn)
        if cfg.redis.url:
            from routing.store_redis import RedisPolicyStore  # only with Redis configured

            return RedisPolicyStore(cfg.redis.url)
        return SQLitePolicyStore(os.path.join(cfg.server.data_dir, "policy.sqlite3"))

    async def start(self) -> None:
        try:
            await self._open()
        except Exception as exc:  # serve the config file's policy; the sync task retries
            self.last_error = str(exc)
            log.error("policy store unavailable, serving the config file's policy: %s", exc)
            await self._serve_file_without_copied_revocations()
        self._task = asyncio.get_running_loop().create_task(self._follow(), name="pointsman-policy-sync")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._drop_store()

    async def _drop_store(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            try:
                await store.close()
            except Exception as exc:  # closing a broken connection
                log.debug("closing the policy store: %s", exc)

    async def _serve_file_without_copied_revocations(self) -> None:
        """The store could not be read at startup: put the config file's policy in force without the keys whose
        secret the local copy lists as revoked (version 0, as the file's policy; the store's newest version
        replaces it once the store is back)."""
        revoked = self.copy.load()
        if not revoked:
            return
        self.revoked = revoked
        doc = policy_doc(self.file_cfg)
        lines = refused(doc, revoked, self.file_cfg.env_keys)
        if not lines:
            return
        log.warning(
            "policy store unavailable: the config file's policy is served without %d client key(s) whose secret"
            " the local copy %s lists as revoked",
            len(lines),
            self.copy.path,
        )
        for line in lines:
            log.warning("%s", line)
        # the file's own document less some keys: valid as the file was
        await self.live.swap(self.live.build(self.effective(without_revoked(doc, revoked)), 0))

    async def _learn(self, revoked: dict[str, Revocation]) -> None:
        """``revoked`` read from the store, joined with what this gateway already knew (its local copy at startup,
        the store's earlier reads since): in use from now on, and kept in the local copy. A revocation is never
        lifted, so one the store no longer holds (a store that lost its data: a Redis without persistence, a
        database restored from an older backup) stays in force here, with a warning; an emptied store gets them
        back when the config file is imported into it again (``_seed``)."""
        lost = {d: r for d, r in self.revoked.items() if d not in revoked}
        if lost and lost.keys() != self._lost_named:
            log.warning(
                "the policy store does not hold %d revoked client key secret(s) this gateway knows of (its local"
                " copy %s, or an earlier read of the store): they stay revoked here (%s)",
                len(lost),
                self.copy.path,
                ", ".join(sorted({f"key {r.name!r}" for r in lost.values()})),
            )
        self._lost_named = frozenset(lost)
        self.revoked = revoked | lost
        await self.copy.keep(self.revoked)

    async def _open(self) -> None:
        store = self.make_store()
        await store.open()
        try:
            if not self.revoked:  # a first open: what earlier runs of this gateway learned
                self.revoked = self.copy.held()
            await self._learn(await store.revocations())
            latest = await self._seed(store)
        except BaseException:
            await store.close()
            raise
        self.store = store
        self.last_error = None
        await self._adopt(latest)

    async def _seed(self, store: PolicyStore) -> PolicyVersion:
        file_doc = policy_doc(self.file_cfg)
        summary = f"imported from {describe_source(self.file_cfg.source)}"
        before = await store.latest()
        restore: dict[str, str] = {}
        if before is None and self.revoked:
            # an emptied store: the revocations this gateway knows go back into it with the imported version
            restore = {d: r.name for d, r in self.revoked.items()}
            log.warning(
                "the policy store is empty: the config file's policy is imported into it again, with the %d revoked"
                " client key secret(s) this gateway knows of (its local copy %s)",
                len(restore),
                self.copy.path,
            )
        pv = await store.seed(file_doc, doc_hash(file_doc), summary, restore)
        if before is not None and pv.version > before.version and pv.source == "config":
            for line in dropped_by_import(before, pv, self.revoked, self.file_cfg.env_keys):
                log.warning("%s", line)
        return pv

    async def _follow(self) -> None:
        """Background: install versions written by other workers/replicas; reconnect after store failures."""
        failures = 0
        interval = self.settings.sync_interval_s
        while True:
            if cancel_requested():  # a cancellation the store's Redis client swallowed (wire.tasks)
                raise asyncio.CancelledError
            try:
                if self.store is None:
                    await self._open()
                store = self.store
                assert store is not None
                await store.wait_change(interval)
                await self.sync()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving the current policy, retry
                failures += 1
                self.last_error = str(exc)
                if failures == 1:
                    log.warning("policy sync failed (serving version %d): %s", self.live.runtime.version, exc)
                await self._drop_store()
                await asyncio.sleep(min(5.0, interval * 2 ** min(failures, 4)))

    async def sync(self) -> None:
        """Install the store's newest version if it is not the one in force."""
        store = self._store()
        if await store.head() == self.live.runtime.version:
            return
        async with self.lock:
            # revocations are written with the versions: read them again when the head moves
            await self._learn(await store.revocations())
            latest = await store.latest()
            if latest is None:  # the store was wiped: start it again from the config file
                latest = await self._seed(store)
            await self._adopt(latest)

    async def _adopt(self, pv: PolicyVersion) -> None:
        if pv.version == self.live.runtime.version or pv.version == self._bad_version:
            return
        for line in refused(pv.doc, self.revoked, self.file_cfg.env_keys):
            log.warning("%s", line)
        try:
            rt = self.live.build(self.effective(without_revoked(pv.doc, self.revoked)), pv.version)
        except ConfigError as exc:
            self._bad_version = pv.version
            log.error(
                "stored policy version %d is invalid, keeping version %d: %s",
                pv.version,
                self.live.runtime.version,
                exc,
            )
            return
        await self.live.swap(rt)
        log.info("policy version %d in force (%s: %s)", pv.version, pv.source, pv.summary)

    # -- documents -------------------------------------------------------------------------------------
    def effective(self, doc: dict[str, Any]) -> GatewayConfig:
        """The full config with ``doc``'s sections, validated like the config file (raises ConfigError)."""
        full = self.file_cfg.model_dump(mode="json")
        for section in SECTIONS:
            full[section] = doc.get(section, [] if section in ("routes", "keys") else {})
        backends = full["backends"]
        if isinstance(backends, dict):
            full["backends"] = {n: self._resolve_secret(n, b) for n, b in backends.items()}
        return validate_document(full, "policy")

    def _resolve_secret(self, name: str, b: Any) -> Any:
        """A stored backend with each credential marker replaced by the config file's value for it (the file's
        backend of the same name; header names compared case-insensitively); a marker the file no longer has a
        value for is dropped."""
        if not isinstance(b, dict):
            return b
        headers = b.get("headers")
        marked = isinstance(headers, dict) and FROM_CONFIG in headers.values()
        if b.get("api_key") != FROM_CONFIG and not marked:
            return b
        b = dict(b)
        file_backend = self.file_cfg.backends.get(name)
        if b.get("api_key") == FROM_CONFIG:
            secret = getattr(file_backend, "api_key", None)
            if secret:
                b["api_key"] = secret
            else:
                del b["api_key"]
        if marked:
            assert isinstance(headers, dict)
            file_headers = getattr(file_backend, "headers", None) or {}
            values = {str(n).lower(): v for n, v in file_headers.items()}
            b["headers"] = {
                n: values[str(n).lower()] if v == FROM_CONFIG else v
                for n, v in headers.items()
                if v != FROM_CONFIG or str(n).lower() in values
            }
        return b

    def _store(self) -> PolicyStore:
        if self.store is None:
            raise to_api_error(
                StoreUnavailable(f"The policy store is unavailable: {self.last_error or 'not open'}.")
            )
        return self.store

    # -- changes ---------------------------------------------------------------------------------------
    async def change(
        self, summary: str, mutate: Mutation, *, source: str = "admin", dry_run: bool = False
    ) -> PolicyVersion:
        """Apply ``mutate`` to the newest document, validate, store as a new version and put it in force.

        ``mutate`` may raise ``ApiError`` (404, 409). Invalid results raise a 400 naming the failing paths.
        """
        try:
            async with self.lock:
                for _ in range(5):
                    store = self._store()
                    latest = await store.latest()
                    if latest is None:
                        raise to_api_error(StoreUnavailable("The policy store is empty."))
                    revoked = await store.revocations()
                    # keys holding a revoked secret (an imported file's) are not in force: not in the next version
                    doc = without_revoked(copy.deepcopy(latest.doc), revoked)
                    before = copy.deepcopy(doc.get("keys"))
                    mutate(doc)
                    try:
                        cfg = self.effective(doc)
                    except ConfigError as exc:
                        raise invalid(exc) from None
                    if dry_run:
                        return PolicyVersion(latest.version, latest.created_at, "dry_run", summary, doc)
                    revoke = removed_secrets(before, doc.get("keys"))
                    try:
                        pv = await store.append(doc, source, summary, latest.version, revoke)
                    except VersionConflict:
                        await asyncio.sleep(0.01)
                        continue
                    await self._learn(
                        revoked
                        | {d: Revocation(d, name, pv.version, pv.created_at) for d, name in revoke.items()}
                    )
                    await self.live.swap(self.live.build(cfg, pv.version))
                    log.info("policy version %d in force (%s: %s)", pv.version, source, summary)
                    return pv
        except StoreUnavailable as exc:
            raise to_api_error(exc) from None
        raise ApiError(
            409, "The policy changed concurrently too often; retry.", "invalid_request_error", "conflict"
        )

    async def history(self, limit: int) -> list[PolicyVersion]:
        try:
            return await self._store().history(limit)
        except StoreUnavailable as exc:
            raise to_api_error(exc) from None

    async def get(self, version: int) -> PolicyVersion | None:
        try:
            return await self._store().get(version)
        except StoreUnavailable as exc:
            raise to_api_error(exc) from None

    async def rollback(self, version: int) -> PolicyVersion:
        """A new version with the routes, models and backends of ``version`` (client keys stay as they are)."""
        old = await self.get(version)
        if old is None:
            raise ApiError(
                404, f"There is no policy version {version}.", "invalid_request_error", "not_found", "version"
            )

        def restore(doc: dict[str, Any]) -> None:
            for section in ("routes", "models", "backends"):
                doc[section] = copy.deepcopy(old.doc.get(section, [] if section == "routes" else {}))

        return await self.change(f"rollback to version {version}", restore, source="rollback")
