"""The admin area's pages (id/en) and API: audit, branches and enrolment, services/counters with history and
rollback, approvals. Every route declares its permission; every query is limited to the caller's tenants (another
tenant's branch answers 404). Configuration is distributed through the hub's NATS connection opened in `lifespan`."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import msgspec
import sqlalchemy as sa
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response import Redirect, ServerSentEvent, Template

from cloud.admin import audit, branches, config_edit, fleet, floor, intervene, nats_users, staff
from cloud.admin.words import COOKIE, context, pick_lang
from cloud.config_dist import ConfigRefused, running_version
from cloud.console import overview
from cloud.credentials import issue
from cloud.identity.permissions import requires
from cloud.nats_link import background_link, ready_wait
from cloud.ops import ca
from cloud.ops.backup_store import enrolment_keys
from cloud.store import branches as store_branches
from cloud.web.console import live_stream, render_fragment
from cloud.web.request_state import actor as _actor
from cloud.web.request_state import client_ip as _ip
from cloud.web.request_state import principal as _user
from cloud.web.request_state import store_engine as _engine
from sync.contract_config import BranchConfig, Service, config_decoder, short_hash
from sync.staff import STAFF_BUCKET

log = logging.getLogger("qms.cloud.admin")


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
    """The hub's JetStream handle for distributing configuration (absent until NATS answers: edits are then refused
    with the reason), connected in the background so a hub started while NATS is down still serves."""
    servers = list(app.state.get("nats_servers") or ())
    users = asyncio.create_task(_keep_nats_users(app)) if nats_users.Target.from_env() else None
    try:
        if not servers:
            yield
            return
        async with _admin_link(app, servers):
            yield
    finally:
        if users is not None:
            users.cancel()
            await asyncio.gather(users, return_exceptions=True)


@asynccontextmanager
async def _admin_link(app: Litestar, servers: list[str]) -> AsyncGenerator[None, None]:
    """The JetStream handle, connected in the background."""

    async def ready(nc: Any) -> None:
        from cloud.consumer import ensure_config_bucket

        js = nc.jetstream()
        await ensure_config_bucket(js)
        await _ensure_staff_bucket(js)
        app.state["admin_js"] = js
        app.state["admin_nc"] = nc  # HQ's interventions: requests to a branch

    async with background_link(
        "admin", servers, dict(app.state.get("nats_options") or {}), ready, ready_wait(app.state)
    ):
        yield


NATS_USERS_INTERVAL = float(os.environ.get("QMS_NATS_USERS_INTERVAL", "60"))


async def _keep_nats_users(app: Litestar) -> None:
    """At start and every QMS_NATS_USERS_INTERVAL seconds: rewrite the include when it differs from the store (a
    change made through another replica, when each NATS node has its own hub beside it; a hub started after one)."""
    while True:
        target = nats_users.Target.from_env()
        engine, keys_dir = app.state["engine"], app.state["keys_dir"]
        try:
            if target is not None and await asyncio.to_thread(nats_users.stale, engine, keys_dir, target):
                await asyncio.to_thread(
                    nats_users.sync_quietly, engine, keys_dir, target, actor="hub", reason="the include was out of date"
                )
        except Exception:  # the store is unreachable for now: the next round tries again
            log.exception("nats users: cannot compare the include with the store")
        await asyncio.sleep(NATS_USERS_INTERVAL)


async def _ensure_staff_bucket(js: Any) -> None:
    """The `qms_staff` KV bucket (direct get for the branches' reads), made on first start."""
    from nats.js.api import KeyValueConfig, StorageType
    from nats.js.errors import BucketNotFoundError

    try:
        await js.key_value(STAFF_BUCKET)
    except BucketNotFoundError:
        await js.create_key_value(KeyValueConfig(bucket=STAFF_BUCKET, history=5, storage=StorageType.FILE, direct=True))


# --- helpers -----------------------------------------------------------------------------------------------------


def _correlation(request: Request[Any, Any, Any]) -> str | None:
    value = request.headers.get("x-request-id")
    return value[:128] if value else None


def _sees(request: Request[Any, Any, Any], tenant: str, branch_id: str | None = None) -> bool:
    user = _user(request)
    if branch_id is not None and hasattr(user, "sees_branch"):
        return bool(user.sees_branch(tenant, branch_id))
    return user.tenants is None or tenant in user.tenants


def _lang(request: Request[Any, Any, Any]) -> str:
    return pick_lang(request.query_params.get("lang"), request.cookies.get(COOKIE))


def _page(request: Request[Any, Any, Any], name: str, status: int = 200, **values: Any) -> Template:
    lang = _lang(request)
    return Template(
        template_name=f"admin/{name}",
        context={**context(lang), "request": request, **values},
        status_code=status,
        media_type=MediaType.HTML,  # an error status would otherwise be labelled JSON
    )


def _back(path: str, request: Request[Any, Any, Any], **query: str) -> Redirect:
    return Redirect(path=f"{path}?{urlencode({'lang': _lang(request), **query})}", status_code=303)


async def _form(request: Request[Any, Any, Any]) -> dict[str, Any]:
    data = await request.form()
    return {k: data.getall(k) if len(data.getall(k)) > 1 else data.get(k) for k in data}


def _parse_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


# --- audit -------------------------------------------------------------------------------------------------------


def _filters(request: Request[Any, Any, Any]) -> audit.Filters:
    q = request.query_params
    return audit.Filters(
        since=_parse_date(q.get("since")),
        until=_parse_date(q.get("until")),
        actor=q.get("actor") or None,
        action=q.get("action") or None,
        branch=q.get("branch") or None,
    )


@get("/admin/audit", guards=[requires("audit.read")])
async def audit_page(request: Request[Any, Any, Any]) -> Template:
    """The merged audit trail (hub actions and branch events), filtered by date, user, action, branch."""
    return await asyncio.to_thread(_audit_page, request)


def _audit_page(request: Request[Any, Any, Any]) -> Template:
    filters = _filters(request)
    with _engine(request).connect() as conn:
        found, tz = audit.entries(conn, filters, _user(request).tenants)
    rows = [(e, audit.zone_for(tz, e)) for e in found]
    return _page(request, "audit.html", rows=rows, filters=filters, query=request.url.query)


@get("/admin/audit.csv", guards=[requires("audit.read")])
async def audit_csv(request: Request[Any, Any, Any]) -> Response[str]:
    """The filtered trail as CSV (times in each branch's zone); the export itself is audited."""
    return await asyncio.to_thread(_audit_csv, request)


def _audit_csv(request: Request[Any, Any, Any]) -> Response[str]:
    filters = _filters(request)
    with _engine(request).begin() as conn:
        found, tz = audit.entries(conn, filters, _user(request).tenants, limit=100_000)
        audit.record(
            conn,
            actor=_actor(request),
            action="audit.export",
            source_ip=_ip(request),
            correlation_id=_correlation(request),
            after={"rows": len(found), "query": request.url.query},
        )
    body = "".join(audit.csv_lines(found, tz))
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="hq-audit.csv"'},
    )


# --- branches ----------------------------------------------------------------------------------------------------


def _profile_or_404(request: Request[Any, Any, Any], tenant: str, branch_id: str) -> branches.Profile:
    if not _sees(request, tenant, branch_id):
        raise NotFoundException()
    with _engine(request).connect() as conn:
        profile = branches.get_profile(conn, tenant, branch_id)
    if profile is None:
        raise NotFoundException()
    return profile


@get("/admin/branches", guards=[requires("branches.read")])
async def branches_page(request: Request[Any, Any, Any]) -> Template:
    """Managed branches with status, time zone and what each runs."""
    return await asyncio.to_thread(_branches_page, request)


def _branches_page(request: Request[Any, Any, Any]) -> Template:
    with _engine(request).connect() as conn:
        profiles = branches.list_profiles(conn, _user(request).tenants)
    running = {(p.tenant, p.branch_id): running_version(_engine(request), p.tenant, p.branch_id) for p in profiles}
    return _page(request, "branches.html", profiles=profiles, running=running, **_nats_status(request))


def _blank(request: Request[Any, Any, Any]) -> branches.Profile:
    tenants = _user(request).tenants
    return branches.Profile(tenant=sorted(tenants)[0] if tenants else "", branch_id="", name="")


@get("/admin/branches/new", guards=[requires("branches.manage")])
async def branch_new(request: Request[Any, Any, Any]) -> Template:
    """The form for a new branch."""
    return await asyncio.to_thread(_branch_new, request)


def _branch_new(request: Request[Any, Any, Any]) -> Template:
    return _page(request, "branch_form.html", profile=_blank(request), errors={}, new=True)


@post("/admin/branches", guards=[requires("branches.manage")])
async def branch_create(request: Request[Any, Any, Any]) -> Any:
    """Create a branch: its profile, its NATS key, and a one-time enrolment code shown once."""
    form = await _form(request)
    tenant = str(form.get("tenant", "")).strip()
    profile, errors = branches.parse_form(tenant, form, new=True)
    if not branches.BRANCH_ID.match(tenant) or not _sees(request, tenant):
        errors["tenant"] = "err_tenant"
    engine = _engine(request)
    if not errors:
        with engine.connect() as conn:
            if branches.get_profile(conn, tenant, profile.branch_id) is not None:
                errors["branch_id"] = "err_exists"
    if errors:
        return _page(request, "branch_form.html", status=400, profile=profile, errors=errors, new=True)
    keys_dir: Path = request.app.state["keys_dir"]

    def create() -> tuple[str, Any]:
        issue(engine, keys_dir, tenant, profile.branch_id)
        with engine.begin() as conn:
            branches.save_profile(conn, profile, actor=_actor(request), source_ip=_ip(request), new=True)
            return branches.new_enrolment_code(
                conn, tenant, profile.branch_id, actor=_actor(request), source_ip=_ip(request)
            )

    code, expires = await asyncio.to_thread(create)
    outcome = await _sync_nats_users(request, "branch.create", tenant, profile.branch_id)
    return _page(
        request, "branch_form.html", status=201, profile=profile, errors={}, new=False, code=code, expires=expires,
        nats_outcome=outcome, nats_step=_manual_step(keys_dir, outcome),
    )  # fmt: skip


async def _sync_nats_users(
    request: Request[Any, Any, Any], reason: str, tenant: str, branch_id: str, actor: str | None = None
) -> nats_users.Outcome | None:
    """Rewrite and reload nats-server's users where the hub operates it (None: the operator does it by hand)."""
    return await asyncio.to_thread(
        nats_users.sync_quietly, _engine(request), request.app.state["keys_dir"], nats_users.Target.from_env(),
        actor=actor or _actor(request), reason=reason, tenant=tenant, branch=branch_id, source_ip=_ip(request),
    )  # fmt: skip


def _manual_step(keys_dir: Path, outcome: nats_users.Outcome | None) -> list[str] | None:
    """The commands to run by hand: when the hub does not operate nats-server, or when its attempt failed."""
    return nats_reload_step(keys_dir) if outcome is None or not outcome.ok else None


def nats_reload_step(keys_dir: Path) -> list[str]:
    """The commands that make nats-server accept a new branch's key: its users are a static `authorization` include
    (cloud/credentials.py) that the server reads only on (re)load. Shown on the page after a branch is created."""
    target = nats_users.Target.from_env()
    auth_out = str(target.auth_file) if target else os.environ.get("QMS_NATS_AUTH", "nats-auth.conf")
    reload = "nats-server --signal reload"
    if target is not None and target.pid_file is not None:
        reload += f"={shlex.quote(str(target.pid_file))}"
    return [
        f"qms-cloud branch users --keys-dir {shlex.quote(str(keys_dir))} --auth-out {shlex.quote(auth_out)}",
        reload,
    ]


def _nats_status(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The newest rewrite of nats-server's users, for the branch pages (nothing when the operator reloads by hand)."""
    if nats_users.Target.from_env() is None:
        return {}
    with _engine(request).connect() as conn:
        last = nats_users.last_outcome(conn)
    failed = last is not None and not last.ok
    return {"nats_last": last, "nats_step": nats_reload_step(request.app.state["keys_dir"]) if failed else None}


@get("/admin/branches/{tenant:str}/{branch_id:str}", guards=[requires("branches.read")])
async def branch_edit(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> Template:
    """One branch's profile form and its life-cycle actions."""
    return await asyncio.to_thread(_branch_edit, request, tenant, branch_id)


def _branch_edit(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> Template:
    profile = _profile_or_404(request, tenant, branch_id)
    return _page(
        request, "branch_form.html", profile=profile, errors={}, new=False, in_use=request.query_params.get("in_use"),
        **_nats_status(request),
    )  # fmt: skip


@post("/admin/branches/{tenant:str}/{branch_id:str}", guards=[requires("branches.manage")])
async def branch_update(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> Any:
    """Save the profile (validated; errors inline)."""
    current = _profile_or_404(request, tenant, branch_id)
    form = await _form(request)
    profile, errors = branches.parse_form(tenant, form, new=False)
    profile.branch_id, profile.status = branch_id, current.status
    if errors:
        return _page(request, "branch_form.html", status=400, profile=profile, errors=errors, new=False)
    with _engine(request).begin() as conn:
        branches.save_profile(conn, profile, actor=_actor(request), source_ip=_ip(request), new=False)
    return _back(f"/admin/branches/{tenant}/{branch_id}", request)


@post("/admin/branches/{tenant:str}/{branch_id:str}/{action:str}", guards=[requires("branches.manage")])
async def branch_action(
    request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str], action: FromPath[str]
) -> Any:
    """retire | reactivate | delete (refused while it has active services) | enrolment-code (shown once) | rekey (a
    new NATS key: the running appliance is refused until it enrols again with the code shown). Where the hub operates
    nats-server, every change of who may connect rewrites and reloads its users."""
    profile = _profile_or_404(request, tenant, branch_id)
    actor, ip = _actor(request), _ip(request)
    if action == "rekey":
        keys_dir: Path = request.app.state["keys_dir"]

        def rekey() -> tuple[str, Any]:
            issued = issue(_engine(request), keys_dir, tenant, branch_id)
            with _engine(request).begin() as conn:
                audit.record(
                    conn, actor=actor, action="branch.rekey", tenant=tenant, branch=branch_id,
                    target=f"branch {branch_id}", source_ip=ip, after={"public_key": issued.public_key},
                )  # fmt: skip
                return branches.new_enrolment_code(conn, tenant, branch_id, actor=actor, source_ip=ip)

        code, expires = await asyncio.to_thread(rekey)
        outcome = await _sync_nats_users(request, "branch.rekey", tenant, branch_id)
        return _page(
            request, "branch_form.html", profile=profile, errors={}, new=False, code=code, expires=expires,
            nats_outcome=outcome, nats_step=_manual_step(keys_dir, outcome),
        )  # fmt: skip
    with _engine(request).begin() as conn:
        if action in ("retire", "reactivate"):
            branches.set_status(
                conn, tenant, branch_id, "retired" if action == "retire" else "active", actor=actor, source_ip=ip
            )
        elif action == "delete":
            try:
                branches.delete_branch(conn, tenant, branch_id, actor=actor, source_ip=ip)
            except branches.BranchInUse as exc:
                return _back(f"/admin/branches/{tenant}/{branch_id}", request, in_use=str(exc))
        elif action == "enrolment-code":
            code, expires = branches.new_enrolment_code(conn, tenant, branch_id, actor=actor, source_ip=ip)
            return _page(request, "branch_form.html", profile=profile, errors={}, new=False, code=code, expires=expires)
        else:
            raise NotFoundException()
    await _sync_nats_users(request, f"branch.{action}", tenant, branch_id)
    if action == "delete":
        return _back("/admin/branches", request)
    return _back(f"/admin/branches/{tenant}/{branch_id}", request)


class EnrolRequest(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /api/v1/enrol` body."""

    code: str
    csr: str | None = None  # the appliance's certificate request (cloud.ops.ca signs it when the hub has a CA)
    addresses: list[str] = msgspec.field(default_factory=list)  # its LAN addresses, for the certificate


@post("/api/v1/enrol")
async def enrol(request: Request[Any, Any, Any], data: JSONBody[EnrolRequest]) -> Response[Any]:
    """An appliance's first boot: a valid, unused, unexpired code -> its NATS seed and newest configuration, once.
    Open on purpose (the code is the secret, 80 bits); every answer but success is the same 404."""
    response = await asyncio.to_thread(_enrol, request, data)
    body = response.content
    if isinstance(body, dict) and "nats_seed" in body:  # its key is in the include already: repairs a missed reload
        await _sync_nats_users(
            request, "branch.enrolled", body["tenant"], body["branch_id"], actor=f"appliance:{body['branch_id']}"
        )
    return response


def _enrol(request: Request[Any, Any, Any], data: EnrolRequest) -> Response[Any]:
    try:
        done = branches.redeem(_engine(request), request.app.state["keys_dir"], data.code[:64], source_ip=_ip(request))
    except branches.EnrolmentRefused:
        return Response(
            {"detail": "unknown, used or expired code"}, status_code=404, media_type="application/problem+json"
        )
    servers = list(request.app.state.get("nats_servers") or ())
    return Response(
        {
            "tenant": done.tenant,
            "branch_id": done.branch_id,
            "nats_servers": servers,
            "nats_seed": done.nats_seed,
            "config": done.config,
            **ca.enrolment_certificate(done.tenant, done.branch_id, data.csr, data.addresses),
            **enrolment_keys(),  # the hub's backup and release public keys (cloud/ops/backup_store.py)
        },
        headers={"Cache-Control": "no-store"},
    )


# --- services and counters ---------------------------------------------------------------------------------------


def _config_view(request: Request[Any, Any, Any], tenant: str, branch_id: str, **extra: Any) -> Template:
    engine = _engine(request)
    with engine.connect() as conn:
        doc, on_its_way = config_edit.editing_document(conn, tenant, branch_id)
        versions = config_edit.history(conn, tenant, branch_id)
        profiles = branches.list_profiles(conn, _user(request).tenants)
        gated = config_edit.approvals_on(conn, tenant)
    running = running_version(engine, tenant, branch_id)
    others = [p for p in profiles if p.tenant == tenant and p.branch_id != branch_id and p.status == "active"]
    return _page(
        request,
        "config.html",
        status=extra.pop("status", 200),
        tenant=tenant,
        branch_id=branch_id,
        doc=doc,
        on_its_way=on_its_way,
        running=running,
        versions=versions,
        others=others,
        gated=gated,
        short_hash=short_hash,
        zone=next((p.timezone for p in profiles if (p.tenant, p.branch_id) == (tenant, branch_id)), "Asia/Jakarta"),
        **extra,
    )


@get("/admin/config", guards=[requires("config.manage")])
async def config_index(request: Request[Any, Any, Any]) -> Template:
    """Branches to pick for editing."""
    return await asyncio.to_thread(_config_index, request)


def _config_index(request: Request[Any, Any, Any]) -> Template:
    with _engine(request).connect() as conn:
        profiles = branches.list_profiles(conn, _user(request).tenants)
    running = {(p.tenant, p.branch_id): running_version(_engine(request), p.tenant, p.branch_id) for p in profiles}
    return _page(request, "branches.html", profiles=profiles, running=running, pick_config=True)


@get("/admin/config/{tenant:str}/{branch_id:str}", guards=[requires("config.manage")])
async def config_page(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> Template:
    """A branch's services and counters (as it runs them), the edit forms, and the version history with diffs."""
    return await asyncio.to_thread(_config_page, request, tenant, branch_id)


def _config_page(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> Template:
    if not _sees(request, tenant, branch_id):
        raise NotFoundException()
    notice = request.query_params.get("notice")
    template = [item.partition(":")[::2] for item in (request.query_params.get("template") or "").split(",") if item]
    return _config_view(request, tenant, branch_id, notice=notice, template=template)


async def _apply(
    request: Request[Any, Any, Any], tenant: str, branch_id: str, edited: BranchConfig, what: str, form: dict[str, Any]
) -> Any:
    """Validate and submit one edited document; inline errors (400) or a conflict (409) re-render the page."""
    checked, errors = config_edit.validate(edited)
    if errors or checked is None:
        return _config_view(request, tenant, branch_id, status=400, errors=errors, form=form)
    js = request.app.state.get("admin_js")
    if js is None:
        return _config_view(request, tenant, branch_id, status=503, errors=[context(_lang(request))["w"]["no_nats"]])
    try:
        outcome = await config_edit.submit(
            _engine(request), js, tenant, branch_id, checked, actor=_actor(request), source_ip=_ip(request), what=what
        )
    except ConfigRefused as exc:
        return _config_view(request, tenant, branch_id, status=409, conflict=str(exc), form=form)
    if outcome.request_id:
        return _back(f"/admin/config/{tenant}/{branch_id}", request, notice=f"requested:{outcome.request_id}")
    assert outcome.distributed is not None
    return _back(f"/admin/config/{tenant}/{branch_id}", request, notice=f"distributed:v{outcome.distributed.version}")


def _base(request: Request[Any, Any, Any], tenant: str, branch_id: str, form: dict[str, Any]) -> BranchConfig:
    """The running document with the form's `base_version` (the version the page showed when it was edited)."""
    with _engine(request).connect() as conn:
        doc, _on_its_way = config_edit.editing_document(conn, tenant, branch_id)
    if doc is None:
        raise NotFoundException()
    try:
        base = int(form.get("base_version") or doc.version)
    except ValueError:
        base = doc.version
    return msgspec.structs.replace(doc, version=base)


@post("/admin/config/{tenant:str}/{branch_id:str}/service", guards=[requires("config.manage")])
async def config_service(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> Any:
    """Add or edit a service; with `apply_to`, the same service goes to those branches too (a template)."""
    if not _sees(request, tenant, branch_id):
        raise NotFoundException()
    form = await _form(request)
    doc = _base(request, tenant, branch_id, form)
    service = config_edit.service_from_form(form, doc.service(str(form.get("id", "")).strip()))
    if isinstance(service, str):
        return _config_view(request, tenant, branch_id, status=400, errors=[service], form=form)
    answer = await _apply(
        request, tenant, branch_id, config_edit.upsert_service(doc, service), f"service {service.id}", form
    )
    targets = form.get("apply_to") or []
    if not isinstance(answer, Redirect) or not targets:
        return answer  # refused here: the template goes nowhere else either
    results = [
        await _template_to(request, tenant, other, service)
        for other in ([targets] if isinstance(targets, str) else targets)
    ]
    location = f"{answer.url}&{urlencode({'template': ','.join(results)})}"
    return Redirect(path=location, status_code=303)


async def _template_to(request: Request[Any, Any, Any], tenant: str, other: str, service: Service) -> str:
    """Add the service to another branch's configuration, checked on its own: `<branch>:v<N>`, `<branch>:request`
    (approvals) or `<branch>:refused` (invalid there, a conflict, no configuration, or not the caller's)."""
    if not _sees(request, tenant, other) or not re.fullmatch(r"[a-z0-9-]{1,64}", other):
        return f"{other[:64]}:refused"
    with _engine(request).connect() as conn:
        their, _on_its_way = config_edit.editing_document(conn, tenant, other)
    if their is None:
        return f"{other}:refused"
    checked, errors = config_edit.validate(
        config_edit.upsert_service(their, msgspec.structs.replace(service, area_id=None))
    )
    js = request.app.state.get("admin_js")
    if errors or checked is None or js is None:
        return f"{other}:refused"
    try:
        outcome = await config_edit.submit(
            _engine(request),
            js,
            tenant,
            other,
            checked,
            actor=_actor(request),
            source_ip=_ip(request),
            what=f"template service {service.id}",
        )
    except ConfigRefused:
        return f"{other}:refused"
    return f"{other}:request" if outcome.request_id else f"{other}:v{outcome.distributed.version}"  # type: ignore[union-attr]


@post("/admin/config/{tenant:str}/{branch_id:str}/counter", guards=[requires("config.manage")])
async def config_counter(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> Any:
    """Add or edit a counter and the services it serves."""
    if not _sees(request, tenant, branch_id):
        raise NotFoundException()
    form = await _form(request)
    doc = _base(request, tenant, branch_id, form)
    chosen = form.get("services") or []
    counter = config_edit.counter_from_form(form, [chosen] if isinstance(chosen, str) else list(chosen))
    return await _apply(
        request, tenant, branch_id, config_edit.upsert_counter(doc, counter), f"counter {counter.id}", form
    )


@post("/admin/config/{tenant:str}/{branch_id:str}/rollback/{version:int}", guards=[requires("config.manage")])
async def config_rollback(
    request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str], version: FromPath[int]
) -> Any:
    """Distribute an earlier version's content again (as a new version, or a change request)."""
    if not _sees(request, tenant, branch_id) or not 0 < version < 2**63:  # past 64 bits no row has it (SQLite: 500)
        raise NotFoundException()
    js = request.app.state.get("admin_js")
    if js is None:
        return _config_view(request, tenant, branch_id, status=503, errors=[context(_lang(request))["w"]["no_nats"]])
    try:
        outcome = await config_edit.rollback(
            _engine(request), js, tenant, branch_id, version, actor=_actor(request), source_ip=_ip(request)
        )
    except LookupError:
        raise NotFoundException() from None
    except ConfigRefused as exc:
        return _config_view(request, tenant, branch_id, status=409, conflict=str(exc))
    notice = f"requested:{outcome.request_id}" if outcome.request_id else f"distributed:v{outcome.distributed.version}"  # type: ignore[union-attr]
    return _back(f"/admin/config/{tenant}/{branch_id}", request, notice=notice)


# --- approvals ---------------------------------------------------------------------------------------------------


@get("/admin/approvals", guards=[requires("config.approve")])
async def approvals_page(request: Request[Any, Any, Any]) -> Template:
    """Change requests (pending first) with their diffs, and each tenant's approvals switch."""
    return await asyncio.to_thread(_approvals_page, request)


def _approvals_page(request: Request[Any, Any, Any]) -> Template:
    user = _user(request)
    with _engine(request).begin() as conn:
        config_edit.expire_requests(conn)
        found = config_edit.list_requests(conn, user.tenants)
        tenants = (
            sorted(user.tenants)
            if user.tenants is not None
            else sorted({p.tenant for p in branches.list_profiles(conn, None)})
        )
        switches = {t: config_edit.approvals_on(conn, t) for t in tenants}
    found.sort(key=lambda r: r["status"] != "pending")
    return _page(
        request,
        "approvals.html",
        requests=found,
        switches=switches,
        me=_actor(request),
        error=request.query_params.get("error"),
    )


@post("/admin/approvals/settings/{tenant:str}", guards=[requires("config.approve")])
async def approvals_switch(request: Request[Any, Any, Any], tenant: FromPath[str]) -> Any:
    """Turn the tenant's approval requirement on or off (audited)."""
    if not _sees(request, tenant):
        raise NotFoundException()
    form = await _form(request)
    with _engine(request).begin() as conn:
        config_edit.set_approvals(
            conn, tenant, form.get("approvals") == "on", actor=_actor(request), source_ip=_ip(request)
        )
    return _back("/admin/approvals", request)


@post("/admin/approvals/{request_id:str}/{decision:str}", guards=[requires("config.approve")])
async def approvals_decide(request: Request[Any, Any, Any], request_id: FromPath[str], decision: FromPath[str]) -> Any:
    """Approve (then distribute) or reject a pending request; never one's own."""
    if decision not in ("approve", "reject"):
        raise NotFoundException()
    js = request.app.state.get("admin_js")
    if decision == "approve" and js is None:
        return _back("/admin/approvals", request, error="no_nats")
    try:
        await config_edit.decide(
            _engine(request),
            js,
            request_id,
            approve=decision == "approve",
            actor=_actor(request),
            source_ip=_ip(request),
            tenants=_user(request).tenants,
        )
    except LookupError:
        raise NotFoundException() from None
    except config_edit.DecisionRefused as exc:
        return _back("/admin/approvals", request, error=str(exc))
    except ConfigRefused:
        return _back("/admin/approvals", request, error="conflict")
    return _back("/admin/approvals", request)


# --- device fleet ------------------------------------------------------------------------------------------------


@get("/admin/fleet", guards=[requires("fleet.read")])
async def fleet_page(request: Request[Any, Any, Any]) -> Template:
    """Every device of the caller's branches: online/offline, last seen, config version acknowledged."""
    return await asyncio.to_thread(_fleet_page, request)


def _fleet_page(request: Request[Any, Any, Any], status: int = 200, **extra: Any) -> Template:
    q = request.query_params
    with _engine(request).connect() as conn:
        devices = fleet.fleet(conn, _user(request).tenants, branch=q.get("branch") or None, kind=q.get("type") or None)
        tz = audit.zones(conn)
        known = sa.select(store_branches.c.tenant_id, store_branches.c.branch_id).order_by(
            store_branches.c.tenant_id, store_branches.c.branch_id
        )  # every branch the hub knows (replicated or added), not only those with a profile
        targets = [(t, b) for t, b in conn.execute(known) if _sees(request, t, b)]
    rows = [(d, tz.get((d.tenant, d.branch_id), audit.DEFAULT_ZONE)) for d in devices]
    online = sum(1 for d in devices if d.online)
    return _page(
        request,
        "fleet.html",
        status=status,
        rows=rows,
        online=online,
        total=len(devices),
        branch=q.get("branch") or "",
        kind=q.get("type") or "",
        zone_info=ZoneInfo,
        targets=targets,
        device_types=intervene.DEVICE_TYPES,
        push=extra.pop("push", None),
        push_error=extra.pop("push_error", None),
        push_form=extra.pop("push_form", {}),
    )


@post("/admin/fleet/push", guards=[requires("fleet.manage")])
async def fleet_push(request: Request[Any, Any, Any]) -> Template:
    """Push one device configuration to every device of a type in a group of branches (US-ADMIN-010): a request to
    each branch (cloud/admin/intervene.py), refused at once for an offline one; the results per branch, each audited
    as `fleet.push` (the configuration's digest, never its text). The devices' acknowledgements come back with the
    heartbeats: the list above shows them."""
    form = await _form(request)
    chosen = form.get("branches") or []
    keys = [chosen] if isinstance(chosen, str) else list(chosen)
    command = intervene.device_config(
        str(form.get("device_type") or ""), str(form.get("config") or ""), _actor(request)
    )
    pairs = [tuple(k.split("/", 1)) for k in keys if "/" in k]
    if isinstance(command, str) or not pairs or not all(_sees(request, t, b) for t, b in pairs):
        error = command if isinstance(command, str) else "err_push_branches"
        return await asyncio.to_thread(_fleet_page, request, 400, push_error=error, push_form=form)
    engine, nc = _engine(request), request.app.state.get("admin_nc")
    results = []
    for tenant, branch_id in pairs:
        outcome = await intervene.send(engine, nc, tenant, branch_id, command)
        where = {"tenant": tenant, "branch_id": branch_id, "source_ip": _ip(request)}
        await asyncio.to_thread(intervene.record, engine, command, outcome, **where,
                                correlation_id=_correlation(request), action="fleet.push")  # fmt: skip
        kind, _, detail = outcome.partition(":")
        results.append((f"{tenant}.{branch_id}", kind, detail))
    return await asyncio.to_thread(_fleet_page, request, push=results, push_form=form)


# --- supervisor from HQ (read-only) ---------------------------------------------------------------------------


@get("/admin/supervisor", guards=[requires("floor.read")])
async def supervisor_index(request: Request[Any, Any, Any]) -> Template:
    """Branches to watch."""
    return await asyncio.to_thread(_supervisor_index, request)


def _supervisor_index(request: Request[Any, Any, Any]) -> Template:
    data = overview(_engine(request), tenants=_user(request).tenants)
    visible = [b for b in data["branches"] if _sees(request, b.tenant, b.branch_id)]
    return _page(request, "supervisor_index.html", branches=visible)


@get("/admin/supervisor/{tenant:str}/{branch_id:str}", guards=[requires("floor.read")])
async def supervisor_floor(
    request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]
) -> Template:
    """A branch's floor, kept current by its live stream; with `floor.intervene`, the interventions' forms."""
    return await asyncio.to_thread(_supervisor_floor, request, tenant, branch_id)


def _floor_context(request: Request[Any, Any, Any], tenant: str, branch_id: str) -> dict[str, Any]:
    if not _sees(request, tenant, branch_id):
        raise NotFoundException()
    with _engine(request).connect() as conn:
        known = conn.execute(
            sa.select(store_branches.c.branch_id).where(
                store_branches.c.tenant_id == tenant, store_branches.c.branch_id == branch_id
            )
        ).first()
        if known is None:
            raise NotFoundException()
        view = floor.floor(conn, tenant, branch_id, _lang(request))
    return {"tenant": tenant, "branch_id": branch_id, "floor": view}


def _supervisor_floor(request: Request[Any, Any, Any], tenant: str, branch_id: str) -> Template:
    q = request.query_params
    values = _floor_context(request, tenant, branch_id)
    return _page(request, "supervisor.html", outcome=q.get("outcome"), detail=q.get("detail"), **values)


@get("/admin/supervisor/{tenant:str}/{branch_id:str}/live", guards=[requires("floor.read")])
async def supervisor_live(
    request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]
) -> ServerSentEvent:
    """The floor's live part as Server-Sent Events (`event: floor`) after each applied batch and every 10 s; it does
    not keep the session alive and ends (`event: ended`) with it."""
    await asyncio.to_thread(_floor_context, request, tenant, branch_id)  # 404 before the stream starts

    def render() -> str:
        values = {**context(_lang(request)), "request": request, **_floor_context(request, tenant, branch_id)}
        return render_fragment(request, "admin/supervisor_live.html", values)

    return live_stream(request, "floor", render)


async def _intervene(request: Request[Any, Any, Any], tenant: str, branch_id: str, command: Any) -> Redirect:
    """Send one intervention (cloud/admin/intervene.py), audit it, and go back to the floor with its outcome."""
    engine, nc = _engine(request), request.app.state.get("admin_nc")
    outcome = await intervene.send(engine, nc, tenant, branch_id, command)
    await asyncio.to_thread(intervene.record, engine, command, outcome, tenant=tenant, branch_id=branch_id,
                            source_ip=_ip(request), correlation_id=_correlation(request))  # fmt: skip
    kind, _, detail = outcome.partition(":")
    extra = {"detail": detail[:64]} if kind in ("called", "empty") else {}
    return _back(f"/admin/supervisor/{tenant}/{branch_id}", request, outcome=kind, **extra)


@post(
    "/admin/supervisor/{tenant:str}/{branch_id:str}/counters/{counter_id:str}/{status:str}",
    guards=[requires("floor.intervene")],
)
async def supervisor_intervene(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    branch_id: FromPath[str],
    counter_id: FromPath[str],
    status: FromPath[str],
) -> Any:
    """Open, pause or close a counter from HQ (`available`, `break`, `closed`), or call the next ticket to it
    (`call-next`): a request to the branch, run there with `hq:<user>` as actor; refused at once when the branch is
    offline or HQ has no NATS, and when the branch does not answer in 5 s."""
    if not _sees(request, tenant, branch_id) or status not in (*intervene.PRESENCE, "call-next"):
        raise NotFoundException()
    if status == "call-next":
        command: Any = intervene.call_next(counter_id, _actor(request))
    else:
        command = intervene.presence(counter_id, status, _actor(request))
    return await _intervene(request, tenant, branch_id, command)


@post(
    "/admin/supervisor/{tenant:str}/{branch_id:str}/tickets/{ticket_id:str}/{action:str}",
    guards=[requires("floor.intervene")],
)
async def supervisor_ticket(
    request: Request[Any, Any, Any],
    tenant: FromPath[str],
    branch_id: FromPath[str],
    ticket_id: FromPath[str],
    action: FromPath[str],
) -> Any:
    """Transfer (form `to_service_id` or `to_counter_id`, `reason`) or cancel (`reason`) a ticket from HQ, run at
    the branch like the counter's own action; a transfer naming no target is a 400 problem."""
    if not _sees(request, tenant, branch_id) or action not in ("transfer", "cancel"):
        raise NotFoundException()
    form = await _form(request)
    if action == "cancel":
        command: Any = intervene.cancel(ticket_id, form, _actor(request))
    elif (command := intervene.transfer(ticket_id, form, _actor(request))) is None:
        raise ProblemDetailsException(status_code=400, detail="to_service_id or to_counter_id is required",
                                      extra={"code": "transfer_target_required"})  # fmt: skip
    return await _intervene(request, tenant, branch_id, command)


# --- central staff accounts --------------------------------------------------------------------------------------


@get("/admin/staff/{tenant:str}/{branch_id:str}", guards=[requires("users.manage")])
async def staff_page(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> Template:
    """A branch's HQ-managed staff accounts and the form to add or change one."""
    return await asyncio.to_thread(_staff_page, request, tenant, branch_id)


def _staff_page(request: Request[Any, Any, Any], tenant: str, branch_id: str, **extra: Any) -> Template:
    if not _sees(request, tenant, branch_id):
        raise NotFoundException()
    with _engine(request).connect() as conn:
        listed = staff.accounts(conn, tenant, branch_id)
        config = config_edit.running_document(conn, tenant, branch_id)
    return _page(
        request,
        "staff.html",
        status=extra.pop("status", 200),
        tenant=tenant,
        branch_id=branch_id,
        accounts=listed,
        counters=[c.id for c in config.counters] if config else [],
        notice=request.query_params.get("notice"),
        requested=request.query_params.get("requested"),
        form=extra.pop("form", {}),
        errors=extra.pop("errors", {}),
    )


@post("/admin/staff/{tenant:str}/{branch_id:str}", guards=[requires("users.manage")])
async def staff_save(request: Request[Any, Any, Any], tenant: FromPath[str], branch_id: FromPath[str]) -> Any:
    """Add or change an account (a password only as its hash) and push the branch's staff document; with the
    tenant's approvals on, file it as a change request instead (distributed when someone else approves it)."""
    if not _sees(request, tenant, branch_id):
        raise NotFoundException()
    form = await _form(request)
    js = request.app.state.get("admin_js")

    def store() -> tuple[Any, dict[str, str], Any]:
        with _engine(request).begin() as conn:
            account, errors = staff.check_form(conn, tenant, branch_id, form)
            if errors:
                return account, errors, None
            if config_edit.approvals_on(conn, tenant):
                return account, errors, staff.file_request(conn, tenant, branch_id, account, actor=_actor(request),
                                                           source_ip=_ip(request))  # fmt: skip
            if js is None:
                return account, errors, None
            return (
                account,
                errors,
                staff.save(conn, tenant, branch_id, account, actor=_actor(request), source_ip=_ip(request)),
            )

    account, errors, doc = await asyncio.to_thread(store)
    if errors or doc is None:
        shown = {k: v for k, v in account.items() if k != "password"}  # never sent back
        if js is None and not errors:
            errors = {"form": "no_nats"}
        return await asyncio.to_thread(_staff_page, request, tenant, branch_id, status=400, form=shown, errors=errors)
    if isinstance(doc, str):  # a change request's id
        return _back(f"/admin/staff/{tenant}/{branch_id}", request, requested=doc)
    await staff.publish(js, doc)
    return _back(f"/admin/staff/{tenant}/{branch_id}", request, notice=f"v{doc.version}")


ROUTES: list[Any] = [
    audit_page,
    audit_csv,
    branches_page,
    branch_new,
    branch_create,
    branch_edit,
    branch_update,
    branch_action,
    enrol,
    config_index,
    config_page,
    config_service,
    config_counter,
    config_rollback,
    approvals_page,
    approvals_switch,
    approvals_decide,
    fleet_page,
    fleet_push,
    supervisor_index,
    supervisor_floor,
    supervisor_live,
    supervisor_intervene,
    supervisor_ticket,
    staff_page,
    staff_save,
]

__all__ = ["ROUTES", "config_decoder", "lifespan"]
