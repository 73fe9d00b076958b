"""The hub keeps nats-server's branch users current by itself where it operates that server (nats-server 2.9 has no
auth callout: its users are the static `authorization` include that `qms-cloud branch users` writes).

Configured by the operator: `QMS_NATS_AUTH_FILE` (the include nats-server reads) and `QMS_NATS_PID_FILE` (nats-server's
`pid_file`; the hub sends it SIGHUP, as `nats-server --signal reload` does). Whenever a branch is created, enrolled,
re-keyed, retired, reactivated or deleted, `sync` regenerates the include with the same code as the command
(cloud/credentials.py), replaces it atomically and reloads the server, under one lock (a PostgreSQL advisory lock;
SQLite's write lock) so replicas never interleave; the outcome is an audit entry the console shows. Idempotent: the
same store gives the same file, rewritten only when it differs."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.admin.audit import record
from cloud.admin.tables import hub_audit
from cloud.admin.words import WORDS
from cloud.credentials import authorization_block, replace_file
from cloud.store import utcnow_iso

log = logging.getLogger("qms.cloud.nats_users")
NATS_USERS_LOCK = 0x716D736E  # PostgreSQL advisory lock key held while rewriting and reloading ("qmsn")
UPDATED, FAILED = "nats.users_updated", "nats.users_failed"
_local = threading.Lock()  # one rewrite at a time inside this process as well (SQLite connections queue anyway)


@dataclass(frozen=True)
class Target:
    """Where the hub writes the users and how it makes nats-server read them."""

    auth_file: Path
    pid_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Target | None:
        """`QMS_NATS_AUTH_FILE` (+ `QMS_NATS_PID_FILE`); None when the operator reloads by hand."""
        env = os.environ if env is None else env
        auth = env.get("QMS_NATS_AUTH_FILE", "").strip()
        if not auth:
            return None
        pid = env.get("QMS_NATS_PID_FILE", "").strip()
        return cls(Path(auth), Path(pid) if pid else None)


RELOAD_CODES = frozenset(
    {"no_pid_file", "unreadable_pid_file", "bad_pid_file", "no_process", "not_nats", "not_allowed"}
)


def say(lang: str, code: str, params: Mapping[str, str]) -> str:
    """Why a rewrite failed, in the console's language (`nats_err_<code>` in cloud/admin/words.py)."""
    words = WORDS[lang]
    text = words[f"nats_err_{code}"].format(**params)
    return f"{words['nats_err_reload']} {text}" if code in RELOAD_CODES else text


@dataclass(frozen=True)
class Outcome:
    """One rewrite: when, whether it worked, and why not (a code with its details: shown in the page's language)."""

    at: str
    ok: bool
    users: int = 0
    changed: bool = False
    reloaded: bool = False
    code: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        """Why it failed, in English (logs, the audit entry, the command line)."""
        return self.error_in("en")

    def error_in(self, lang: str) -> str | None:
        """Why it failed, in `lang` (None when it worked)."""
        if not self.code:
            return None
        try:
            return say(lang, self.code, self.params)
        except (KeyError, IndexError):  # recorded by another version of the hub
            return self.code


def _failed(code: str, users: int = 0, changed: bool = False, **params: object) -> Outcome:
    return Outcome(utcnow_iso(), ok=False, users=users, changed=changed, code=code,
                   params={k: str(v) for k, v in params.items()})  # fmt: skip


class ReloadFailed(Exception):
    """nats-server could not be told to reload: a code (`nats_err_<code>`) and its details."""

    def __init__(self, code: str, **params: object) -> None:
        self.code, self.params = code, {k: str(v) for k, v in params.items()}
        super().__init__(WORDS["en"][f"nats_err_{code}"].format(**self.params))


def reload_server(pid_file: Path) -> int:
    """SIGHUP to the nats-server whose pid the file holds (what `nats-server --signal reload` does); its pid."""
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        raise ReloadFailed("no_pid_file", pid_file=pid_file) from None
    except OSError as exc:
        raise ReloadFailed("unreadable_pid_file", pid_file=pid_file, reason=exc.strerror or exc) from None
    if not text.isdigit() or int(text) <= 1:
        raise ReloadFailed("bad_pid_file", pid_file=pid_file, text=repr(text[:20]))
    pid = int(text)
    name = _program(pid)  # a stale pid file may name another program now: never send it a signal that would end it
    if name is None:
        raise ReloadFailed("no_process", pid=pid, pid_file=pid_file)
    if "nats-server" not in name:
        raise ReloadFailed("not_nats", pid=pid, pid_file=pid_file, name=repr(name))
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise ReloadFailed("no_process", pid=pid, pid_file=pid_file) from None
    except PermissionError:
        raise ReloadFailed("not_allowed", pid=pid) from None
    return pid


def _program(pid: int) -> str | None:
    """The program name of a process (None: no such process); "nats-server" where there is no /proc to ask."""
    if not Path("/proc/self").exists():
        return "nats-server"
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return None
    except OSError:
        return "nats-server"


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":  # SQLite: the transaction already holds the write lock (BEGIN IMMEDIATE)
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": NATS_USERS_LOCK})


def _apply(conn: Connection, keys_dir: Path, target: Target) -> Outcome:
    """Rewrite and reload (inside the caller's locked transaction); failures become an Outcome, never an exception."""
    try:
        text = authorization_block(conn, keys_dir)
        changed = replace_file(target.auth_file, text)
        users = text.count('"permissions"')  # branch users (the hub's own has none)
    except OSError as exc:
        return _failed("cannot_write", file=target.auth_file, reason=exc.strerror or exc)
    if target.pid_file is None:
        return Outcome(utcnow_iso(), ok=True, users=users, changed=changed)
    try:
        reload_server(target.pid_file)
    except ReloadFailed as exc:
        return _failed(exc.code, users, changed, **exc.params)
    return Outcome(utcnow_iso(), ok=True, users=users, changed=changed, reloaded=True)


def sync(
    engine: Engine,
    keys_dir: Path,
    target: Target,
    *,
    actor: str,
    reason: str,
    tenant: str | None = None,
    branch: str | None = None,
    source_ip: str | None = None,
) -> Outcome:
    """Bring nats-server's users in line with the store now (serialised across replicas) and audit the outcome."""
    with _local, engine.begin() as conn:
        _lock(conn)
        outcome = _apply(conn, keys_dir, target)
        record(
            conn,
            actor=actor,
            action=UPDATED if outcome.ok else FAILED,
            tenant=tenant,
            branch=branch,
            target=f"nats users {target.auth_file}",
            source_ip=source_ip,
            after={
                "reason": reason,
                "branches": outcome.users,
                "changed": outcome.changed,
                "reloaded": outcome.reloaded,
                "error": outcome.error,
                "code": outcome.code,
                "params": outcome.params or None,
            },
        )
    if outcome.ok:
        log.info("nats users updated (%s): %d branches, reloaded=%s", reason, outcome.users, outcome.reloaded)
    else:
        log.error("nats users not updated (%s): %s", reason, outcome.error)
    return outcome


def sync_quietly(engine: Engine, keys_dir: Path, target: Target | None, **why: Any) -> Outcome | None:
    """`sync` for a console action that has already succeeded: a store error here is logged, never the action's."""
    if target is None:
        return None
    try:
        return sync(engine, keys_dir, target, **why)
    except Exception as exc:  # the branch change committed; the page says the users were not updated
        log.exception("nats users not updated (%s)", why.get("reason"))
        return _failed("not_recorded", reason=type(exc).__name__)


def stale(engine: Engine, keys_dir: Path, target: Target) -> bool:
    """Whether the include differs from what the store says (another replica's change, a hub started after one)."""
    try:
        return target.auth_file.read_text() != authorization_block(engine, keys_dir)
    except OSError:
        return True


def last_outcome(conn: Connection) -> Outcome | None:
    """The newest recorded rewrite (what the branch pages show)."""
    row = conn.execute(
        sa.select(hub_audit.c.at, hub_audit.c.action, hub_audit.c.after)
        .where(hub_audit.c.action.in_((UPDATED, FAILED)))
        .order_by(hub_audit.c.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    after: dict[str, Any] = json.loads(row.after or "{}")
    return Outcome(row.at, ok=row.action == UPDATED, users=int(after.get("branches") or 0),
                   changed=bool(after.get("changed")), reloaded=bool(after.get("reloaded")), code=after.get("code"),
                   params=dict(after.get("params") or {}))  # fmt: skip
