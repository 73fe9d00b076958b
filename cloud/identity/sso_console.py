"""The console page where a tenant admin configures the tenant's single sign-on (OIDC and SAML), id/en: the same
validation and audit as the API (`cloud.identity.sso.save`), the client secret write-only (never shown, an empty box
keeps the stored one), a refusal shown above the form with what was typed kept; below, the tenant's SSO users the hub
has signed in (role as mapped now, IdP, last sign-in), each with a button to disable or enable them at the hub."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from cloud.identity import sso, sso_accounts
from cloud.identity.oidc import SsoRefused
from cloud.identity.permissions import require_tenant, requires
from cloud.identity.signin import language
from cloud.web.console_auth import ConsoleAuth, HqPrincipal

PAGE = "/sso-settings"
TEXT_FIELDS = ("display_name", "issuer", "client_id", "scopes", "role_claim", "branch_claim", "username_claim",
               "staff_claim", "idp_metadata")  # fmt: skip

WORDS = {
    "id": {"title": "Single sign-on", "intro": "Penyedia identitas (IdP) organisasi untuk konsol HQ dan untuk staf "
           "yang masuk di perangkat cabang.", "tenant": "Tenant", "open": "Buka", "display_name": "Nama di tombol",
           "issuer": "Issuer (URL)", "client_id": "Client ID", "client_secret": "Client secret",
           "secret_set": "tersimpan — kosongkan untuk mempertahankan", "secret_unset": "belum ada",
           "scopes": "Scope", "idp_metadata": "Metadata XML IdP", "roles": "Peta grup → peran (satu per baris: "
           "grup = peran; tenant_admin, branch_manager, auditor)", "role_claim": "Klaim/atribut grup",
           "branch_claim": "Klaim/atribut cabang", "username_claim": "Klaim/atribut nama pengguna",
           "staff_claim": "Klaim/atribut akun staf cabang", "save": "Simpan", "remove": "Hapus",
           "saved": "Tersimpan.", "removed": "Dihapus.", "configured": "aktif", "not_configured": "belum diatur",
           "sp_metadata": "Metadata SP hub untuk admin IdP", "bad_roles": "Peta peran: tulis 'grup = peran' per baris",
           "users": "Pengguna SSO", "users_intro": "Yang pernah masuk lewat SSO. Menonaktifkan di sini mengakhiri sesi "
           "mereka dan menghentikan token API mereka; hub tidak tahu bila pengguna dihapus di IdP.",
           "user": "Pengguna", "role": "Peran (sekarang)", "idp": "IdP", "last_sign_in": "Terakhir masuk",
           "state": "Status", "active": "aktif", "disabled": "nonaktif", "no_role": "tanpa peran",
           "disable": "Nonaktifkan", "enable": "Aktifkan", "no_users": "Belum ada yang masuk lewat SSO.",
           "user_disabled": "Pengguna dinonaktifkan.", "user_enabled": "Pengguna diaktifkan."},
    "en": {"title": "Single sign-on", "intro": "The organisation's identity provider (IdP), for the HQ console and for "
           "staff signing in at the branch appliances.", "tenant": "Tenant", "open": "Open",
           "display_name": "Name on the button", "issuer": "Issuer (URL)", "client_id": "Client ID",
           "client_secret": "Client secret", "secret_set": "stored — leave empty to keep it",
           "secret_unset": "none yet", "scopes": "Scopes", "idp_metadata": "IdP metadata XML",
           "roles": "Group → role map (one per line: group = role; tenant_admin, branch_manager, auditor)",
           "role_claim": "Group claim/attribute", "branch_claim": "Branch claim/attribute",
           "username_claim": "User name claim/attribute", "staff_claim": "Branch staff account claim/attribute",
           "save": "Save", "remove": "Remove", "saved": "Saved.", "removed": "Removed.", "configured": "on",
           "not_configured": "not set up", "sp_metadata": "The hub's SP metadata for the IdP's admin",
           "bad_roles": "Role map: write 'group = role', one per line",
           "users": "SSO users", "users_intro": "Everyone who has signed in through SSO. Disabling a user here ends "
           "their sessions and stops their API tokens; the hub does not learn of users removed at the IdP.",
           "user": "User", "role": "Role (now)", "idp": "IdP", "last_sign_in": "Last sign-in", "state": "State",
           "active": "active", "disabled": "disabled", "no_role": "no role", "disable": "Disable",
           "enable": "Enable", "no_users": "Nobody has signed in through SSO yet.",
           "user_disabled": "User disabled.", "user_enabled": "User enabled."},
}  # fmt: skip


def _auth(request: Request[Any, Any, Any]) -> ConsoleAuth:
    auth: ConsoleAuth = request.app.state["console_auth"]
    return auth


def _tenant_of(principal: HqPrincipal, asked: str) -> str:
    """The tenant the page is about: the one asked for, else the caller's only tenant ('' = ask)."""
    if asked:
        require_tenant(principal, asked)
        return asked
    return next(iter(principal.tenants)) if principal.tenants and len(principal.tenants) == 1 else ""


def _roles_text(roles: dict[str, str]) -> str:
    return "\n".join(f"{group} = {role}" for group, role in sorted(roles.items()))


def _parse_roles(text: str) -> dict[str, str] | None:
    """`group = role` lines (blank lines ignored); None when a line is not of that form."""
    roles: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        group, sep, role = line.partition("=")
        if not sep or not group.strip() or not role.strip():
            return None
        roles[group.strip()] = role.strip()
    return roles


def _forms(engine: Any, tenant: str) -> dict[str, dict[str, Any]]:
    """Per protocol what the form shows: the stored settings (never the secret), or the defaults."""
    shown: dict[str, dict[str, Any]] = {}
    for protocol in sso.PROTOCOLS:
        idp = sso.load(engine, tenant, protocol)
        settings = idp.settings if idp else sso.IdpSettings(roles={})
        shown[protocol] = {**{f: getattr(settings, f) for f in TEXT_FIELDS}, "roles": _roles_text(settings.roles),
                           "configured": idp is not None, "secret_set": bool(idp and idp.secret)}  # fmt: skip
    return shown


def _page(request: Request[Any, Any, Any], tenant: str, *, notice: str = "", error: str = "", protocol: str = "",
          typed: dict[str, Any] | None = None) -> Template:  # fmt: skip
    lang = language(request)
    forms = _forms(_auth(request).engine, tenant) if tenant else {}
    if typed is not None and protocol:
        forms[protocol] = {**forms[protocol], **typed}
    users = sso_accounts.list_accounts(_auth(request).engine, tenant) if tenant else []
    context = {"lang": lang, "w": WORDS[lang], "tenant": tenant, "forms": forms, "notice": notice, "error": error,
               "error_protocol": protocol, "active": "sso", "base": str(request.base_url).rstrip("/"),
               "users": users}  # fmt: skip
    return Template(template_name="identity/sso.html", context=context, headers={"Cache-Control": "no-store"},
                    status_code=400 if error else 200)  # fmt: skip


@get(PAGE, guards=[requires("users.manage")], include_in_schema=False)
async def sso_page(request: Request[Any, Any, Any], tenant: FromQuery[str] = "", done: FromQuery[str] = "") -> Template:
    """The tenant's OIDC and SAML settings as forms."""
    chosen = _tenant_of(request.scope["user"], tenant.strip())
    notice = WORDS[language(request)][done] if done in ("saved", "removed", "user_disabled", "user_enabled") else ""
    return await asyncio.to_thread(_page, request, chosen, notice=notice)


@post(PAGE + "/{tenant:str}/{protocol:str}", guards=[requires("users.manage")], include_in_schema=False)
async def sso_save_form(
    request: Request[Any, Any, Any], tenant: FromPath[str], protocol: FromPath[str]
) -> Response[Any] | Template:
    """Save one protocol's form (checked like the API; audited `sso.configure`, the secret never in the entry)."""
    me: HqPrincipal = request.scope["user"]
    require_tenant(me, tenant)
    if protocol not in sso.PROTOCOLS:
        raise NotFoundException(f"no protocol {protocol!r}")
    form = await request.form()
    typed = {f: str(form.get(f) or "").strip() for f in TEXT_FIELDS}
    typed["idp_metadata"] = str(form.get("idp_metadata") or "")
    roles_text = str(form.get("roles") or "")
    secret = str(form.get("client_secret") or "")
    w = WORDS[language(request)]
    roles = _parse_roles(roles_text)
    if roles is None:
        return await asyncio.to_thread(_page, request, tenant, error=w["bad_roles"], protocol=protocol,
                                       typed={**typed, "roles": roles_text})  # fmt: skip
    fields = {k: v for k, v in typed.items() if v or k in ("display_name", "issuer", "client_id", "idp_metadata")}
    settings = sso.IdpSettings(roles=roles, client_secret=secret or None, **fields)
    auth = _auth(request)
    try:
        await asyncio.to_thread(sso.save, auth.engine, tenant, protocol, settings, auth.clock(), me.username or "open")
    except (SsoRefused, ValueError) as exc:
        return await asyncio.to_thread(_page, request, tenant, error=str(exc), protocol=protocol,
                                       typed={**typed, "roles": roles_text})  # fmt: skip
    return Redirect(path=f"{PAGE}?tenant={tenant}&done=saved", status_code=303)


@post(PAGE + "/{tenant:str}/{protocol:str}/remove", guards=[requires("users.manage")], include_in_schema=False)
async def sso_remove_form(request: Request[Any, Any, Any], tenant: FromPath[str], protocol: FromPath[str]) -> Redirect:
    """Switch one protocol off (audited `sso.remove`)."""
    me: HqPrincipal = request.scope["user"]
    require_tenant(me, tenant)
    auth = _auth(request)
    await asyncio.to_thread(sso.remove, auth.engine, tenant, protocol, auth.clock(), me.username or "open")
    return Redirect(path=f"{PAGE}?tenant={tenant}&done=removed", status_code=303)


@post(PAGE + "/{tenant:str}/users/{action:str}", guards=[requires("users.manage")], include_in_schema=False)
async def sso_user_form(request: Request[Any, Any, Any], tenant: FromPath[str], action: FromPath[str]) -> Redirect:
    """Disable or enable one SSO user (audited `sso_user.disable` / `sso_user.enable`), named in the form's
    `username` field so that any name (`dept/bob`, `%`, `?`, `#`, spaces) arrives exactly; unknown → 404."""
    me: HqPrincipal = request.scope["user"]
    require_tenant(me, tenant)
    if action not in ("disable", "enable"):
        raise NotFoundException(f"no action {action!r}")
    username = (await request.form()).get("username")
    if not isinstance(username, str) or not username:
        raise NotFoundException("no SSO user named")
    auth = _auth(request)
    done = await asyncio.to_thread(sso_accounts.set_disabled, auth.engine, tenant, username, action == "disable",
                                   auth.clock(), me.username or "open")  # fmt: skip
    if done is None:
        raise NotFoundException(f"no SSO user {username!r} of {tenant}")
    return Redirect(path=f"{PAGE}?tenant={tenant}&done=user_{action}d", status_code=303)


ROUTES: list[Any] = [sso_page, sso_save_form, sso_remove_form, sso_user_form]
