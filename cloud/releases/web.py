"""The releases area's routes (US-ADMIN-010); `cloud.web.app` mounts `ROUTES`.

- `GET /api/v1/releases/fleet` (releases.manage): per branch the assigned version and wave, what it runs, its
  failures — filtered by the caller's scope.
- `POST /api/v1/releases/{version}/publish` (releases.manage): {tenant, wave: canary|rest, branches: [...]}.
- `GET /api/v1/releases/assigned/{tenant}/{branch}` and `GET /api/v1/releases/{version}/files/{name}`: what an
  appliance pulls. Open on purpose: the manifest is Ed25519-signed and every file's digest is in it, so a bundle is
  worth nothing without the hub's key; the assignment names only a version.
- `GET /releases` (releases.manage): the console page (id/en) — registered releases, versions and failures per branch,
  and a form that publishes a release to a wave (`POST /releases/publish`).
- `POST /api/v1/releases/report` (appliance): its outcome signed with the branch's NKey, verified against the key the
  hub issued (cloud/releases/fleet.py) — the ack of a version or of a rollback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from litestar import MediaType, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody
from litestar.response import File, Redirect, Template

from cloud.identity.permissions import requires, scope_filter
from cloud.releases import fleet
from cloud.releases.tables import releases
from cloud.store import branches
from cloud.web.console_auth import HqPrincipal
from cloud.web.request_state import store_engine as _engine

PROBLEM = "application/problem+json"


def _problem(status: int, detail: str) -> Response[Any]:
    return Response({"status": status, "detail": detail}, status_code=status, media_type=PROBLEM)


@get("/api/v1/releases/fleet", guards=[requires("releases.manage")], sync_to_thread=True)
def fleet_view(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Versions and failures per branch."""
    user: HqPrincipal = request.scope["user"]
    with _engine(request).connect() as conn:
        return {"branches": fleet.fleet(conn, scope_filter(branches, user))}


class PublishRequest(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /api/v1/releases/{version}/publish` body."""

    tenant: str
    wave: str
    branches: list[str] = []


@post("/api/v1/releases/{version:str}/publish", guards=[requires("releases.manage")], sync_to_thread=True)
def publish(request: Request[Any, Any, Any], version: str, data: JSONBody[PublishRequest]) -> Response[Any]:
    """Assign the release to the canary branches, or to the rest of the tenant."""
    user: HqPrincipal = request.scope["user"]
    if user.tenants is not None and data.tenant not in user.tenants:
        return _problem(404, f"no tenant {data.tenant}")
    try:
        targets = fleet.publish(_engine(request), version, data.tenant, data.wave, branch_ids=data.branches,
                                actor=user.username or "?")  # fmt: skip
    except ValueError as exc:
        return _problem(400, str(exc))
    except LookupError as exc:
        return _problem(404, str(exc))
    return Response({"version": version, "wave": data.wave, "branches": targets}, status_code=200)


@get("/api/v1/releases/assigned/{tenant:str}/{branch_id:str}", sync_to_thread=True)
def assigned(request: Request[Any, Any, Any], tenant: str, branch_id: str) -> Response[Any]:
    """The version this branch should run, with the signed manifest (204 when none is assigned)."""
    with _engine(request).connect() as conn:
        found = fleet.assigned(conn, tenant, branch_id)
    return Response(found, status_code=200) if found else Response(None, status_code=204)


@get("/api/v1/releases/{version:str}/files/{name:str}", sync_to_thread=True)
def release_file(request: Request[Any, Any, Any], version: str, name: str) -> File:
    """A file of a registered bundle (the manifest, its signature, or a wheel it lists)."""
    with _engine(request).connect() as conn:
        bundle = conn.execute(sa.select(releases.c.bundle_dir).where(releases.c.version == version)).scalar()
    if bundle is None or "/" in name or name.startswith("."):
        raise NotFoundException("no such release file")
    path = Path(bundle) / name
    if not path.is_file():
        raise NotFoundException("no such release file")
    return File(path=path, filename=name)


class ReportRequest(msgspec.Struct, forbid_unknown_fields=True):
    """`POST /api/v1/releases/report` body: the JSON report and its NKey signature (base64)."""

    report: str
    signature: str


@post("/api/v1/releases/report")
async def report(request: Request[Any, Any, Any], data: JSONBody[ReportRequest]) -> Response[Any]:
    """An appliance's signed outcome: 204 when accepted, 403 when the signature does not verify."""
    try:
        await asyncio.to_thread(fleet.accept_report, _engine(request), data.report[:8000], data.signature[:200])
    except fleet.ReportRefused as exc:
        return _problem(403 if "signature" in str(exc) or "unknown branch" in str(exc) else 400, str(exc))
    return Response(None, status_code=204)


def _lang(request: Request[Any, Any, Any]) -> str:
    lang = request.query_params.get("lang") or request.cookies.get("qms_lang") or "id"
    return lang if lang in ("id", "en") else "id"


@get("/releases", guards=[requires("releases.manage")], sync_to_thread=True)
def releases_page(request: Request[Any, Any, Any]) -> Template:
    """The console's releases page: what is registered, what each branch in scope should run and runs, failures."""
    user: HqPrincipal = request.scope["user"]
    with _engine(request).connect() as conn:
        registered = conn.execute(
            sa.select(releases.c.version, releases.c.created_at).order_by(releases.c.created_at.desc())
        ).all()
        rows = fleet.fleet(conn, scope_filter(branches, user))
    tenants = sorted({r["tenant"] for r in rows})
    return Template(
        template_name="releases/index.html",
        context={
            "request": request,
            "lang": _lang(request),
            "active": "releases",
            "releases": registered,
            "rows": rows,
            "tenants": tenants,
            "done": request.query_params.get("done", ""),
            "error": request.query_params.get("error", ""),
        },
        media_type=MediaType.HTML,
    )


@post("/releases/publish", guards=[requires("releases.manage")], status_code=303)
async def publish_form(request: Request[Any, Any, Any]) -> Redirect:
    """The page's form: publish a version to the canary branches (comma-separated) or to the rest of a tenant."""
    user: HqPrincipal = request.scope["user"]
    form = await request.form()
    version, tenant, wave = (str(form.get(k) or "").strip() for k in ("version", "tenant", "wave"))
    names = [b.strip() for b in str(form.get("branches") or "").split(",") if b.strip()]
    lang = _lang(request)
    if user.tenants is not None and tenant not in user.tenants:
        return Redirect(path=f"/releases?lang={lang}&error=tenant", status_code=303)
    try:
        targets = await asyncio.to_thread(fleet.publish, _engine(request), version, tenant, wave, branch_ids=names,
                                          actor=user.username or "?")  # fmt: skip
    except (ValueError, LookupError):
        return Redirect(path=f"/releases?lang={lang}&error=publish", status_code=303)
    return Redirect(path=f"/releases?lang={lang}&done={len(targets)}", status_code=303)


ROUTES: list[Any] = [fleet_view, publish, assigned, release_file, report, releases_page, publish_form]
