"""Branch admin: services, counters, areas (applied as a new config version), users and roles, the audit viewer."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from edge import audit as audit_log
from edge.auth import ROLES, find_user, hash_password, list_users
from edge.engine import commands as c
from edge.engine.errors import DomainError
from edge.web.deps import appliance
from edge.web.staff import audit_view, boards
from edge.web.staff.forms import (
    FormError,
    area_from_form,
    branch_from_form,
    checked_config,
    counter_from_form,
    hours_text,
    kiosk_from_form,
    replace_item,
    service_from_form,
)
from edge.web.staff.pages import run
from edge.web.staff.render import error_message, language, render, translator
from edge.web.staff.session import Refused, StaffDep, check_csrf, entry, provide_staff, revoke_user_sessions
from sync.contract_config import BranchConfig

STAFF_ROLES = [r for r in ROLES if r != "device"]
MIN_PASSWORD = 8
MAX_USERNAME = 64  # what sign-in takes (the login form, POST /api/v1/auth/token)
MAX_CURSOR = 2**63 - 1  # audit ids are SQLite integers


def _config(request: Request[Any, Any, Any]) -> BranchConfig:
    config = appliance(request).service.view.state.config
    if config is None:
        raise Refused("not_configured", status=404)
    return config


def _base_version(form: dict[str, Any]) -> int:
    raw = str(form.get("base_version", ""))
    if not raw.isdigit():
        raise Refused("input", status=422)
    return int(raw)


class AdminPages(Controller):
    """`/staff/admin`: the configuration document edited through forms, users, and the audit log."""

    path = "/staff/admin"
    dependencies = {"staff": Provide(provide_staff)}

    @get("/", sync_to_thread=False)
    def overview(self, request: Request[Any, Any, Any], staff: StaffDep) -> Template:
        """Areas, services and counters at a glance, with their edit links."""
        staff.require("admin")
        return render(
            request,
            "staff/admin.html",
            staff,
            config=_config(request),
            notice=request.query_params.get("msg"),
            error=request.query_params.get("err"),
        )

    @get("/services/{service_id:str}", sync_to_thread=False)
    def service_form(self, request: Request[Any, Any, Any], staff: StaffDep, service_id: FromPath[str]) -> Template:
        """Edit a service (`new` for a new one)."""
        staff.require("admin")
        config = _config(request)
        service = config.service(service_id)
        if service is None and service_id != "new":
            raise Refused("not_found", status=404)
        return render(
            request,
            "staff/admin_service.html",
            staff,
            config=config,
            service=service,
            hours=hours_text(service.hours if service else None),
            errors=[],
            form=None,
        )

    @get("/kiosk", sync_to_thread=False)
    def kiosk_form(self, request: Request[Any, Any, Any], staff: StaffDep) -> Template:
        """The kiosks' settings: customer inputs, screen, branding, printer, offline buffer."""
        staff.require("admin")
        config = _config(request)
        return render(request, "staff/admin_kiosk.html", staff, config=config, k=config.kiosk, errors=[], form=None)

    @get("/counters/{counter_id:str}", sync_to_thread=False)
    def counter_form(self, request: Request[Any, Any, Any], staff: StaffDep, counter_id: FromPath[str]) -> Template:
        """Edit a counter and its services (`new` for a new one)."""
        staff.require("admin")
        config = _config(request)
        counter = config.counter(counter_id)
        if counter is None and counter_id != "new":
            raise Refused("not_found", status=404)
        return render(request, "staff/admin_counter.html", staff, config=config, counter=counter, errors=[], form=None)

    @post("/config/{kind:str}")
    async def save(
        self, request: Request[Any, Any, Any], staff: StaffDep, kind: FromPath[str]
    ) -> Response[Any] | Template:
        """Apply an edited service, counter or area as a new config version (stale base version -> clear message)."""
        staff.require("admin")
        raw = await request.form()
        form: dict[str, Any] = dict(raw)
        form["services"] = raw.getall("services") if "services" in raw else []
        await check_csrf(request, staff, form)
        config = _config(request)
        old_id = str(form.get("old_id") or "") or None
        try:
            updated = _edited(config, kind, form, old_id)
            cmd = c.ApplyConfig(
                actor=staff.username,
                config=checked_config(updated),
                base_version=_base_version(form),
                source="staff-ui",
            )
            item_id = str(form.get("id") or old_id)
            audit = entry(
                request,
                staff.username,
                staff.role,
                f"config_{kind}",
                target=f"{kind}:{item_id}",
                change="update" if old_id else "create",
                base_version=form.get("base_version"),
                changes=audit_view.config_changes(config, cmd.config, kind, old_id, item_id, language(request)),
            )
            response = await run(appliance(request), cmd, audit)
        except (FormError, DomainError) as exc:
            errors = (
                exc.translated(translator(request)) if isinstance(exc, FormError) else [error_message(request, exc)]
            )
            if isinstance(exc, DomainError):
                errors += [str(e) for e in exc.extra.get("errors", [])]  # type: ignore[attr-defined]
            return self._form_again(request, staff, kind, old_id, form, errors)
        message = translator(request)("Saved. The branch now runs configuration version %(v)s.", v=response["version"])
        return Redirect(f"/staff/admin/?msg={message}", status_code=303)

    def _form_again(
        self,
        request: Request[Any, Any, Any],
        staff: StaffDep,
        kind: str,
        old_id: str | None,
        form: dict[str, Any],
        errors: list[str],
    ) -> Template:
        config = _config(request)
        if kind == "service":
            service = config.service(old_id) if old_id else None
            return render(
                request,
                "staff/admin_service.html",
                staff,
                422,
                config=config,
                service=service,
                hours=str(form.get("hours", "")),
                errors=errors,
                form=form,
            )
        if kind == "counter":
            counter = config.counter(old_id) if old_id else None
            return render(
                request,
                "staff/admin_counter.html",
                staff,
                422,
                config=config,
                counter=counter,
                errors=errors,
                form=form,
            )
        if kind == "kiosk":
            return render(request, "staff/admin_kiosk.html", staff, 422, config=config, k=config.kiosk, errors=errors,
                          form=form)  # fmt: skip
        return render(request, "staff/admin.html", staff, 422, config=config, error="; ".join(errors), notice=None)

    # ---- users ---------------------------------------------------------------------------------------------

    @get("/users", sync_to_thread=False)
    def users(self, request: Request[Any, Any, Any], staff: StaffDep) -> Template:
        """Users, their roles and counters."""
        staff.require("admin")
        return self._users(request, staff)

    def _users(
        self, request: Request[Any, Any, Any], staff: StaffDep, errors: list[str] | None = None, status: int = 200
    ) -> Template:
        users = appliance(request).service.read(list_users)
        editing = next((u for u in users if u.username == request.query_params.get("edit")), None)
        return render(
            request,
            "staff/admin_users.html",
            staff,
            status,
            users=[u for u in users if u.role != "device"],
            editing=editing,
            roles=STAFF_ROLES,
            config=_config(request),
            errors=errors or [],
            notice=request.query_params.get("msg"),
        )

    @post("/users")
    async def save_user(self, request: Request[Any, Any, Any], staff: StaffDep) -> Response[Any] | Template:
        """Create or update a user; a changed role, counters, password or deactivation signs them out."""
        staff.require("admin")
        raw = await request.form()
        form: dict[str, Any] = dict(raw)
        await check_csrf(request, staff, form)
        _ = translator(request)
        username = str(form.get("username", "")).strip()
        role = str(form.get("role", ""))
        password = str(form.get("password", ""))
        active = str(form.get("active", "")) == "on"
        config = _config(request)
        counters = [cid for cid in raw.getall("counters") if config.counter(cid)] if "counters" in raw else []
        errors = []
        if not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
            errors.append(_("Username: letters, digits, dot, dash and underscore only."))
        if len(username) > MAX_USERNAME:
            errors.append(_("Username: at most %(n)s characters.", n=MAX_USERNAME))
        if role not in STAFF_ROLES:
            errors.append(_("Choose a role."))
        if role == "agent" and not counters:
            errors.append(_("An agent needs at least one counter."))
        exists = appliance(request).service.read(lambda conn: find_user(conn, username)) is not None
        if (password or not exists) and len(password) < MIN_PASSWORD:
            errors.append(_("The password needs at least %(n)s characters.", n=MIN_PASSWORD))
        if username == staff.username and (role != "admin" or not active):
            errors.append(_("You cannot remove your own admin access."))
        if errors:
            return self._users(request, staff, errors, 422)
        audit = entry(
            request,
            staff.username,
            staff.role,
            "user_update" if exists else "user_create",
            target=f"user:{username}",
            new_role=role,
            counters=",".join(counters),
            active=active,
            password_changed=bool(password),
        )
        # argon2 is slow on purpose: hash off the event loop and off the single writer thread.
        hashed = await asyncio.to_thread(hash_password, password) if password else None
        now = appliance(request).service.clock()

        def write(conn: sqlite3.Connection) -> None:
            save_user(conn, username, hashed, role, counters, active, now)
            revoke_user_sessions(conn, username)
            audit_log.insert(conn, audit, now)

        await asyncio.wrap_future(appliance(request).service.submit_store(write))
        return Redirect(f"/staff/admin/users?msg={_('Saved.')}", status_code=303)

    # ---- audit ---------------------------------------------------------------------------------------------

    @get("/audit", sync_to_thread=False)
    def audit(
        self,
        request: Request[Any, Any, Any],
        staff: StaffDep,
        day_from: FromQuery[str | None] = None,
        day_to: FromQuery[str | None] = None,
        actor: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
        before: FromQuery[int | None] = None,
    ) -> Template:
        """The audit log, filtered by date range (branch-local days), user and action type, 200 entries a page."""
        staff.require("admin")
        app = appliance(request)
        filters = _audit_filters(day_from, day_to, actor, action)
        if before is not None:  # a hand-edited cursor past SQLite's integers: the nearest one it can compare
            before = max(-MAX_CURSOR, min(before, MAX_CURSOR))
        rows = _audit_rows(request, filters, audit_log.DEFAULT_LIMIT, before)
        actors, actions = app.service.read(audit_log.known_values)
        older = rows[-1].id if len(rows) == audit_log.DEFAULT_LIMIT else None
        readable = _readable(request, rows)
        return render(request, "staff/audit.html", staff, rows=rows, actors=actors, actions=actions, filters=filters,
                      query_of=urlencode, older=older, paged=before is not None, readable=readable)  # fmt: skip

    @get("/audit.csv")
    async def audit_csv(
        self,
        request: Request[Any, Any, Any],
        staff: StaffDep,
        day_from: FromQuery[str | None] = None,
        day_to: FromQuery[str | None] = None,
        actor: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        """The filtered audit log as CSV (times in the branch's timezone, with offset); the export is audited too."""
        staff.require("admin")
        app = appliance(request)
        filters = _audit_filters(day_from, day_to, actor, action)
        tz = boards.zone(app.service.view)

        def export() -> tuple[int, bytes]:  # up to 100,000 rows: off the event loop
            rows = _audit_rows(request, filters, AUDIT_EXPORT_LIMIT, None)
            readable = _readable(request, rows)
            out = io.StringIO()
            writer = csv.writer(out)
            # the raw columns as before, then the same target and details in words (names, diffs)
            writer.writerow(["time", "user", "role", "action", "target", "details", "ip", "user_agent", "event_seq",
                             "target_name", "details_text"])  # fmt: skip
            for r in rows:
                detail = msgspec.json.encode(r.detail).decode()
                writer.writerow([r.at.astimezone(tz).isoformat(timespec="seconds"), r.actor, r.role or "", r.action,
                                 r.target or "", detail, r.ip or "", r.user_agent or "", r.seq or "",
                                 readable.target(r), readable.details_text(r)])  # fmt: skip
            return len(rows), out.getvalue().encode("utf-8-sig")

        count, body = await asyncio.to_thread(export)
        note = entry(request, staff.username, staff.role, "audit_export", rows=count,
                     **{f"filter_{k}": v for k, v in filters.items() if v})  # fmt: skip
        now = app.service.clock()
        await asyncio.wrap_future(app.service.submit_store(lambda conn: audit_log.insert(conn, note, now)))
        name = f"audit-{app.service.view.state.branch_id}-{now.astimezone(tz).date().isoformat()}.csv"
        headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
        return Response(body, media_type="text/csv", headers=headers)


AUDIT_EXPORT_LIMIT = 100_000  # one export, newest first


def _readable(request: Request[Any, Any, Any], rows: list[audit_log.AuditRecord]) -> audit_view.Readable:
    """Names for the records' ids (ticket numbers looked up once for the page)."""
    app = appliance(request)
    ids = audit_view.ticket_ids(rows)
    numbers = app.service.read(lambda conn: audit_view.ticket_numbers(conn, ids)) if ids else {}
    return audit_view.Readable(app.service.view.state, language(request), numbers)


def _audit_filters(day_from: str | None, day_to: str | None, actor: str | None, action: str | None) -> dict[str, str]:
    """The audit viewer's filters as the page and the export share them (empty string: no filter)."""
    return {"day_from": day_from or "", "day_to": day_to or "", "actor": actor or "", "action": action or ""}


def _audit_rows(
    request: Request[Any, Any, Any], filters: dict[str, str], limit: int, before: int | None
) -> list[audit_log.AuditRecord]:
    """Audit entries for the viewer's filters (branch-local days)."""
    app = appliance(request)
    tz = boards.zone(app.service.view)
    since = _local_day(filters["day_from"] or None, tz)
    until = _local_day(filters["day_to"] or None, tz)
    until = until + timedelta(days=1) if until else None
    found: list[audit_log.AuditRecord] = app.service.read(
        lambda conn: audit_log.search(
            conn, since=since, until=until, actor=filters["actor"] or None, action=filters["action"] or None,
            limit=limit, before_id=before,
        )
    )  # fmt: skip
    return found


def save_user(
    conn: sqlite3.Connection,
    username: str,
    password_hash: str | None,
    role: str,
    counters: list[str],
    active: bool,
    now: datetime,
) -> None:
    """Create a user (a password is required then) or update role, counters, active and optionally the password."""
    encoded = msgspec.json.encode(counters).decode()
    if password_hash is not None:
        conn.execute(
            "INSERT INTO users (username, password_hash, role, counters, active, created_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
            (username, password_hash, role, encoded, int(active), now.isoformat()),
        )
    conn.execute(
        "UPDATE users SET role = ?, counters = ?, active = ? WHERE username = ?", (role, encoded, int(active), username)
    )


def _local_day(value: str | None, tz: Any) -> datetime | None:
    """`2026-11-24` as the start of that day in the branch's timezone."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=tz)
    except ValueError:
        return None


def _edited(config: BranchConfig, kind: str, form: dict[str, Any], old_id: str | None) -> BranchConfig:
    """The document with one item created or replaced."""
    if kind == "service":
        service = service_from_form(form, config.service(old_id) if old_id else None)
        services = replace_item(config.services, service, old_id)
        counters = config.counters
        if old_id and service.id != old_id:  # a renamed service id stays mapped on its counters
            counters = [
                msgspec.structs.replace(k, services=[service.id if s == old_id else s for s in k.services])
                for k in counters
            ]
        return msgspec.structs.replace(config, services=services, counters=counters)
    if kind == "counter":
        counter = counter_from_form(form, [s.id for s in config.services], config.counter(old_id) if old_id else None)
        return msgspec.structs.replace(config, counters=replace_item(config.counters, counter, old_id))
    if kind == "branch":
        return branch_from_form(config, form)
    if kind == "kiosk":
        return kiosk_from_form(config, form)
    if kind == "area":
        area = area_from_form(form)
        old = old_id if old_id and any(a.id == old_id for a in config.areas) else None
        return msgspec.structs.replace(config, areas=replace_item(config.areas, area, old))
    raise Refused("not_found", status=404)
