"""The analytics area's console pages (id/en, CSRF-checked forms, every change audited):

* `/analytics/settings` — the tenant's PII switch (contacts shown masked, or not at all, in drill-downs) and its
  anomaly alert recipients (`reports.manage`);
* `/analytics/schedules` — scheduled reports: list, add, edit, delete (`reports.manage`);
* `/analytics/bi-tokens` — BI tokens: issue (the secret is shown once), list, revoke (`tokens.manage`).

Handlers are async (a sync GET and a POST on one path answer 500 in Litestar 2.25); the store work runs in threads.
A tenant or schedule outside the caller's scope is 404, never a confirmation that it exists.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.engine import Engine

from cloud.analytics import bi, schedules
from cloud.analytics import settings as tenant_settings
from cloud.identity.permissions import requires
from cloud.store import branches
from cloud.web.console_auth import HqPrincipal
from cloud.web.request_state import actor as _actor
from cloud.web.request_state import client_ip as _ip
from cloud.web.request_state import principal as _user
from cloud.web.request_state import store_engine as _engine
from sync import kpi

WORDS: dict[str, dict[str, str]] = {
    "id": {
        "dashboard": "Dasbor", "settings": "Pengaturan", "schedules": "Laporan terjadwal", "bi_tokens": "Token BI",
        "tenant": "Tenant", "choose": "Pilih", "save": "Simpan", "saved": "Tersimpan.", "pii": "Data pribadi (PII)",
        "show_contacts": "Tampilkan kontak (disamarkan) di daftar tiket analitik",
        "pii_hint": "Jika mati, nomor telepon dan e-mail tidak ditampilkan sama sekali di drill-down. Ekspor CSV "
                    "tidak pernah memuat kontak.",
        "recipients": "Penerima peringatan anomali",
        "recipients_hint": "Alamat e-mail, satu per baris (atau dipisah koma). Kosong: peringatan hanya tampil di "
                           "dasbor HQ dan layar supervisor cabang.",
        "name": "Nama", "branch": "Cabang", "all_branches": "Semua cabang", "cron": "Jadwal (cron, waktu cabang)",
        "cron_hint": "mis. 0 7 * * 1-5 = pukul 07:00 Senin sampai Jumat", "days": "Hari yang dicakup", "lang": "Bahasa",
        "active": "Aktif", "next_run": "Berikutnya", "last_error": "Galat terakhir", "edit": "Ubah",
        "delete": "Hapus", "confirm_delete": "Hapus jadwal ini?", "add": "Tambah jadwal", "none": "Belum ada.",
        "back": "Kembali", "zone": "Zona waktu", "issue": "Terbitkan token", "datasets": "Dataset",
        "valid_days": "Berlaku (hari)", "expires": "Kedaluwarsa", "last_used": "Terakhir dipakai", "state": "Status",
        "revoke": "Cabut", "revoked": "dicabut", "expired": "kedaluwarsa", "valid": "berlaku",
        "confirm_revoke": "Cabut token ini? Alat BI yang memakainya akan ditolak.",
        "secret_once": "Salin token ini sekarang: token hanya ditampilkan sekali dan tidak dapat dilihat lagi.",
        "created_by": "Dibuat oleh", "no_tenant": "Belum ada tenant.", "error": "Tidak tersimpan",
        "edit_schedule": "Ubah jadwal", "report_recipients": "Penerima laporan",
    },
    "en": {
        "dashboard": "Dashboard", "settings": "Settings", "schedules": "Scheduled reports", "bi_tokens": "BI tokens",
        "tenant": "Tenant", "choose": "Choose", "save": "Save", "saved": "Saved.", "pii": "Personal data (PII)",
        "show_contacts": "Show contacts (masked) in analytics ticket lists",
        "pii_hint": "When off, phone numbers and e-mail addresses are not shown at all in drill-downs. The CSV export "
                    "never holds contacts.",
        "recipients": "Anomaly alert recipients",
        "recipients_hint": "E-mail addresses, one per line (or comma-separated). Empty: alerts are only shown on the "
                           "HQ dashboard and the branch supervisor's floor.",
        "name": "Name", "branch": "Branch", "all_branches": "All branches", "cron": "Schedule (cron, branch time)",
        "cron_hint": "e.g. 0 7 * * 1-5 = 07:00 Monday to Friday", "days": "Days covered", "lang": "Language",
        "active": "Active", "next_run": "Next run", "last_error": "Last error", "edit": "Edit", "delete": "Delete",
        "confirm_delete": "Delete this schedule?", "add": "Add a schedule", "none": "None yet.", "back": "Back",
        "zone": "Time zone", "issue": "Issue a token", "datasets": "Datasets", "valid_days": "Valid for (days)",
        "expires": "Expires", "last_used": "Last used", "state": "State", "revoke": "Revoke", "revoked": "revoked",
        "expired": "expired", "valid": "valid",
        "confirm_revoke": "Revoke this token? BI tools using it will be refused.",
        "secret_once": "Copy this token now: it is shown only once and cannot be seen again.",
        "created_by": "Created by", "no_tenant": "No tenants yet.", "error": "Not saved",
        "edit_schedule": "Edit schedule", "report_recipients": "Report recipients",
    },
}  # fmt: skip
LANG_COOKIE = "qms_lang"
MAX_FORM = 16 * 1024


def _lang(request: Request[Any, Any, Any]) -> str:
    lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "id"
    return lang if lang in WORDS else "id"


def visible_tenants(engine: Engine, principal: HqPrincipal) -> list[str]:
    """The tenants the caller may pick: its own, or (a platform admin) every tenant with a branch."""
    if principal.tenants is not None:
        return sorted(principal.tenants)
    with engine.connect() as conn:
        return sorted(set(conn.execute(sa.select(branches.c.tenant_id).distinct()).scalars()))


def pick_tenant(engine: Engine, principal: HqPrincipal, given: str | None) -> tuple[str | None, list[str]]:
    """The tenant a page is about (`?tenant=`, else the first visible one) and the choices; 404 for one outside
    the caller's scope."""
    choices = visible_tenants(engine, principal)
    if given:
        if not principal.sees_tenant(given):
            raise NotFoundException(f"no tenant {given!r}")
        return given, choices if given in choices else [*choices, given]
    return (choices[0] if choices else None), choices


def tenant_branches(engine: Engine, principal: HqPrincipal, tenant: str) -> list[str]:
    """The tenant's branches the caller sees."""
    with engine.connect() as conn:
        ids = conn.execute(sa.select(branches.c.branch_id).where(branches.c.tenant_id == tenant)).scalars()
        return sorted(b for b in ids if principal.sees_branch(tenant, b))


def _page(request: Request[Any, Any, Any], name: str, tab: str, status: int = 200, **values: Any) -> Template:
    lang = _lang(request)
    context = {"request": request, "lang": lang, "w": WORDS[lang], "active": "analytics", "tab": tab, **values}
    return Template(template_name=f"analytics/{name}", context=context, status_code=status,
                    headers={"Cache-Control": "no-store"})  # fmt: skip


def _back(request: Request[Any, Any, Any], path: str, tenant: str, saved: str = "1") -> Redirect:
    return Redirect(path=f"{path}?tenant={quote(tenant)}&lang={_lang(request)}&saved={saved}", status_code=303)


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (await request.form()).items() if k != "_csrf_token"}


# --- settings: PII switch and alert recipients ---------------------------------------------------------------------


def _settings_context(engine: Engine, principal: HqPrincipal, given: str | None) -> dict[str, Any]:
    tenant, choices = pick_tenant(engine, principal, given)
    current = tenant_settings.TenantAnalytics()
    if tenant is not None:
        with engine.connect() as conn:
            current = tenant_settings.load(conn, tenant)
    return {"tenant": tenant, "tenants": choices, "current": current,
            "recipients_text": "\n".join(current.alert_recipients)}  # fmt: skip


@get("/analytics/settings", guards=[requires("reports.manage")])
async def settings_page(request: Request[Any, Any, Any]) -> Template:
    """The tenant's analytics settings: PII switch and anomaly alert recipients."""
    context = await asyncio.to_thread(_settings_context, _engine(request), _user(request),
                                      request.query_params.get("tenant"))  # fmt: skip
    return _page(request, "settings.html", "settings", saved=request.query_params.get("saved"), **context)


@post("/analytics/settings/pii", guards=[requires("reports.manage")], request_max_body_size=MAX_FORM)
async def settings_pii(request: Request[Any, Any, Any]) -> Redirect:
    """The PII switch (an unticked box is off)."""
    form = await _form(request)
    engine, principal = _engine(request), _user(request)
    tenant, _ = await asyncio.to_thread(pick_tenant, engine, principal, request.query_params.get("tenant"))
    if tenant is None:
        raise NotFoundException("no tenant")
    show = form.get("show_contacts") == "on"
    await asyncio.to_thread(tenant_settings.set_show_contacts, engine, tenant, show, _actor(request), _ip(request))
    return _back(request, "/analytics/settings", tenant, "pii")


@post("/analytics/settings/recipients", guards=[requires("reports.manage")], request_max_body_size=MAX_FORM)
async def settings_recipients(request: Request[Any, Any, Any]) -> Redirect | Template:
    """The alert recipients; an address that is not one is shown back with the form (400)."""
    form = await _form(request)
    engine, principal = _engine(request), _user(request)
    given = request.query_params.get("tenant")
    tenant, _ = await asyncio.to_thread(pick_tenant, engine, principal, given)
    if tenant is None:
        raise NotFoundException("no tenant")
    text = form.get("alert_recipients", "")
    try:
        addresses = tenant_settings.parse_recipients(text)
    except tenant_settings.SettingInvalid as exc:
        context = await asyncio.to_thread(_settings_context, engine, principal, tenant)
        context["recipients_text"] = text
        return _page(request, "settings.html", "settings", status=400, error=str(exc), **context)
    await asyncio.to_thread(tenant_settings.set_alert_recipients, engine, tenant, addresses, _actor(request),
                            _ip(request))  # fmt: skip
    return _back(request, "/analytics/settings", tenant, "recipients")


# --- scheduled reports ---------------------------------------------------------------------------------------------


def _schedules_context(engine: Engine, principal: HqPrincipal, given: str | None) -> dict[str, Any]:
    tenant, choices = pick_tenant(engine, principal, given)
    rows = schedules.listed(engine, frozenset({tenant})) if tenant else []
    visible = [r for r in rows if r["branch_id"] is None or principal.sees_branch(r["tenant_id"], r["branch_id"])]
    for row in visible:
        zone = kpi.zone(row["timezone"])
        row["next_local"] = datetime.fromisoformat(row["next_run_at"]).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    return {"tenant": tenant, "tenants": choices, "rows": visible,
            "branches": tenant_branches(engine, principal, tenant) if tenant else []}  # fmt: skip


def schedule_from_form(engine: Engine, tenant: str, form: dict[str, str], allowed: list[str]) -> schedules.NewSchedule:
    """A schedule from the form's fields (the form's text read, then `schedules.build`; ScheduleInvalid names the
    first bad field)."""
    days = form.get("days", "1").strip()
    if not (days.isascii() and days.isdigit()):
        raise schedules.ScheduleInvalid("days", "a whole number")
    recipients = [a for a in form.get("recipients", "").replace(",", "\n").replace(";", "\n").split() if a]
    return schedules.build(engine, tenant, name=form.get("name", ""), cron=form.get("cron", ""), recipients=recipients,
                           branch_id=form.get("branch_id", "").strip() or None, days=int(days),
                           lang=form.get("lang", "id"), allowed=allowed)  # fmt: skip


@get("/analytics/schedules", guards=[requires("reports.manage")])
async def schedules_page(request: Request[Any, Any, Any]) -> Template:
    """The tenant's scheduled reports, with a form to add one."""
    context = await asyncio.to_thread(_schedules_context, _engine(request), _user(request),
                                      request.query_params.get("tenant"))  # fmt: skip
    return _page(request, "schedules.html", "schedules", saved=request.query_params.get("saved"), form={}, **context)


@post("/analytics/schedules", guards=[requires("reports.manage")], request_max_body_size=MAX_FORM)
async def schedules_add(request: Request[Any, Any, Any]) -> Redirect | Template:
    """Add a schedule; a bad field is shown back with the form (400)."""
    form, engine, principal = await _form(request), _engine(request), _user(request)
    context = await asyncio.to_thread(_schedules_context, engine, principal, request.query_params.get("tenant"))
    tenant = context["tenant"]
    if tenant is None:
        raise NotFoundException("no tenant")
    try:
        new = await asyncio.to_thread(schedule_from_form, engine, tenant, form, context["branches"])
        await asyncio.to_thread(schedules.create, engine, new, _actor(request), datetime.now(UTC))
    except schedules.ScheduleInvalid as exc:
        return _page(request, "schedules.html", "schedules", status=400, error=str(exc), form=form, **context)
    return _back(request, "/analytics/schedules", tenant)


def schedule_in_scope(engine: Engine, principal: HqPrincipal, schedule_id: str, tenant: str | None = None
                      ) -> dict[str, Any]:  # fmt: skip
    """The schedule if the caller sees it (its tenant, its branch) and it is `tenant`'s when given; else 404."""
    row = schedules.get(engine, schedule_id, principal.tenants)
    if row is None or (row["branch_id"] is not None and not principal.sees_branch(row["tenant_id"], row["branch_id"])):
        raise NotFoundException("no such schedule")
    if tenant is not None and row["tenant_id"] != tenant:
        raise NotFoundException("no such schedule")
    return row


@get("/analytics/schedules/{schedule_id:str}", guards=[requires("reports.manage")])
async def schedule_edit(request: Request[Any, Any, Any], schedule_id: FromPath[str]) -> Template:
    """One schedule's edit form."""
    engine, principal = _engine(request), _user(request)
    row = await asyncio.to_thread(schedule_in_scope, engine, principal, schedule_id)
    form = {**row, "recipients": "\n".join(row["recipients"]), "branch_id": row["branch_id"] or ""}
    branch_ids = await asyncio.to_thread(tenant_branches, engine, principal, row["tenant_id"])
    return _page(request, "schedule_edit.html", "schedules", tenant=row["tenant_id"], row=row, form=form,
                 branches=branch_ids)  # fmt: skip


@post("/analytics/schedules/{schedule_id:str}", guards=[requires("reports.manage")], request_max_body_size=MAX_FORM)
async def schedule_save(request: Request[Any, Any, Any], schedule_id: FromPath[str]) -> Redirect | Template:
    """Save a schedule's edit form (its next run is recomputed); a bad field is shown back (400)."""
    form, engine, principal = await _form(request), _engine(request), _user(request)
    row = await asyncio.to_thread(schedule_in_scope, engine, principal, schedule_id)
    branch_ids = await asyncio.to_thread(tenant_branches, engine, principal, row["tenant_id"])
    try:
        new = await asyncio.to_thread(schedule_from_form, engine, row["tenant_id"], form, branch_ids)
        await asyncio.to_thread(schedules.update, engine, schedule_id, new, form.get("active") == "on",
                                principal.tenants, _actor(request), datetime.now(UTC))  # fmt: skip
    except schedules.ScheduleInvalid as exc:
        return _page(request, "schedule_edit.html", "schedules", status=400, error=str(exc), tenant=row["tenant_id"],
                     row=row, form={**form, "active": form.get("active") == "on"}, branches=branch_ids)  # fmt: skip
    return _back(request, "/analytics/schedules", row["tenant_id"])


@post("/analytics/schedules/{schedule_id:str}/delete", guards=[requires("reports.manage")])
async def schedule_delete(request: Request[Any, Any, Any], schedule_id: FromPath[str]) -> Redirect:
    """Delete a schedule."""
    engine, principal = _engine(request), _user(request)
    row = await asyncio.to_thread(schedule_in_scope, engine, principal, schedule_id)
    await asyncio.to_thread(schedules.remove, engine, schedule_id, principal.tenants, _actor(request),
                            datetime.now(UTC))  # fmt: skip
    return _back(request, "/analytics/schedules", row["tenant_id"], "deleted")


# --- BI tokens -----------------------------------------------------------------------------------------------------


def _tokens_context(engine: Engine, principal: HqPrincipal, given: str | None) -> dict[str, Any]:
    tenant, choices = pick_tenant(engine, principal, given)
    now = datetime.now(UTC)
    rows = bi.list_tokens(engine, frozenset({tenant})) if tenant else []
    for row in rows:
        expired = now >= datetime.fromisoformat(row["expires_at"])
        row["state"] = "revoked" if row["revoked"] else "expired" if expired else "valid"
    return {"tenant": tenant, "tenants": choices, "rows": rows, "datasets": sorted(bi.DATASETS)}


@get("/analytics/bi-tokens", guards=[requires("tokens.manage")])
async def tokens_page(request: Request[Any, Any, Any]) -> Template:
    """The tenant's BI tokens (never their secrets) and the form to issue one."""
    context = await asyncio.to_thread(_tokens_context, _engine(request), _user(request),
                                      request.query_params.get("tenant"))  # fmt: skip
    return _page(request, "bi_tokens.html", "bi_tokens", saved=request.query_params.get("saved"), **context)


@post("/analytics/bi-tokens", guards=[requires("tokens.manage")], request_max_body_size=MAX_FORM)
async def tokens_issue(request: Request[Any, Any, Any]) -> Template:
    """Issue a token: the page shows its secret this once (not a redirect, so it is never in a URL or history)."""
    raw_form, engine, principal = await request.form(), _engine(request), _user(request)
    form = {k: str(v) for k, v in raw_form.items()}
    tenant, _ = await asyncio.to_thread(pick_tenant, engine, principal, request.query_params.get("tenant"))
    if tenant is None:
        raise NotFoundException("no tenant")
    datasets = [str(d) for d in raw_form.getall("datasets", [])]
    days = form.get("days", "90").strip()
    secret: str | None = None
    error: str | None = "days: a whole number"
    if days.isascii() and days.isdigit():
        req = bi.TokenRequest(tenant=tenant, name=form.get("name", ""), datasets=datasets, days=int(days))
        try:
            secret, _info = await asyncio.to_thread(bi.issue, engine, req, _actor(request), datetime.now(UTC))
            error = None
        except bi.BiRequestError as exc:
            error = str(exc)
    context = await asyncio.to_thread(_tokens_context, engine, principal, tenant)
    return _page(request, "bi_tokens.html", "bi_tokens", status=201 if secret else 400, secret=secret, error=error,
                 **context)  # fmt: skip


@post("/analytics/bi-tokens/{token_id:str}/revoke", guards=[requires("tokens.manage")])
async def tokens_revoke(request: Request[Any, Any, Any], token_id: FromPath[str]) -> Redirect | Response[Any]:
    """Revoke a token of one of the caller's tenants (another tenant's or an unknown one: 404)."""
    engine, principal = _engine(request), _user(request)
    rows = await asyncio.to_thread(bi.list_tokens, engine, principal.tenants)
    owner = next((r["tenant_id"] for r in rows if r["token_id"] == token_id), None)
    if owner is None or not await asyncio.to_thread(bi.revoke, engine, token_id, principal.tenants, _actor(request)):
        raise NotFoundException("no such BI token")
    return _back(request, "/analytics/bi-tokens", owner, "revoked")


ROUTES: list[Any] = [
    settings_page, settings_pii, settings_recipients,
    schedules_page, schedules_add, schedule_edit, schedule_save, schedule_delete,
    tokens_page, tokens_issue, tokens_revoke,
]  # fmt: skip
