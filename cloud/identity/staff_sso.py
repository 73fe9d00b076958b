"""Staff sign-in at the appliance through the hub's SSO (US-AGENT-002): the hub's half.

The appliance asks (server to server, signed with its branch NKey: `sync.staff_sso`) for a sign-in; the hub keeps
it as a single-use ticket and answers with the path the browser opens, the hub's public key and the IdP's name. The
browser then goes through the tenant's IdP (the console's own OIDC/SAML code); the IdP's user is mapped to a
central staff account of that branch (`staff_claim`, e.g. `preferred_username`, names the account) and the browser
returns to the appliance with an assertion signed by the hub's staff sign-in key (Ed25519, 2 minutes, audience the
branch, the appliance's nonce). Unknown or disabled accounts are refused here; the appliance checks the rest.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.engine import Engine

from cloud.admin.audit import record
from cloud.admin.tables import staff_accounts
from cloud.identity import sso
from cloud.identity.oidc import SsoRefused
from cloud.identity.sessions import digest
from cloud.identity.tables import sso_flows
from cloud.releases.signing import load_or_create_key
from cloud.store import branch_credentials, transaction
from sync.relay import check_token
from sync.staff_sso import MAX_SECONDS, SsoMessageRefused, StaffAssertion, request_claims, sign_assertion
from sync.staff_sso import verify_request as verify_signed_request

log = logging.getLogger("qms.cloud.auth")
KEY_FILE = "staff-sso.key"  # in the hub's keys directory, beside the NATS keys (every replica reads the same file)
TICKET = "staff"  # sso_flows.protocol of a ticket the appliance asked for (its browser has not come yet)
STAFF_PREFIX = "staff:"  # an IdP flow's next_path that ends at an appliance, not in the console
ASSERTION_SECONDS = 90  # below sync.staff_sso.MAX_SECONDS
MAX_RETURN = 300
CALLBACK_PATH = "/staff/sso/callback"


class StaffSsoRefused(SsoRefused):
    """A staff sign-in the hub will not vouch for; `code` travels back to the appliance (no detail does)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class StaffFlow:
    """Which appliance a sign-in returns to, and the nonce of its browser's pending sign-in."""

    tenant: str
    branch_id: str
    return_to: str
    nonce: str

    def encoded(self) -> str:
        """As an IdP flow's next_path."""
        return STAFF_PREFIX + json.dumps({"b": self.branch_id, "r": self.return_to, "n": self.nonce})

    @staticmethod
    def decoded(tenant: str, next_path: str) -> StaffFlow | None:
        """The staff flow an IdP flow's next_path carries, None for a console sign-in."""
        if not next_path.startswith(STAFF_PREFIX):
            return None
        raw = json.loads(next_path[len(STAFF_PREFIX) :])
        return StaffFlow(tenant, str(raw["b"]), str(raw["r"]), str(raw["n"]))


def signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The hub's staff sign-in key (created 0600 on first use)."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    return load_or_create_key(keys_dir / KEY_FILE)


def public_hex(key: Ed25519PrivateKey) -> str:
    """The raw public key, hex, as the appliance pins it."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _check_return(url: str) -> None:
    parts = urlsplit(url)
    if (
        len(url) > MAX_RETURN
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path != CALLBACK_PATH
        or parts.query
        or parts.fragment
    ):
        raise StaffSsoRefused("malformed", f"return_to must be an http(s) URL ending in {CALLBACK_PATH}")


def accept_request(engine: Engine, text: str, now: datetime) -> tuple[str, sso.Idp]:
    """Verify a branch's signed request and keep it as a single-use ticket; (ticket, the tenant's IdP)."""
    try:
        claims = request_claims(text)
        check_token("tenant", claims.tenant)
        check_token("branch", claims.branch_id)
    except (SsoMessageRefused, ValueError) as exc:
        raise StaffSsoRefused("malformed", str(exc)) from None
    _check_return(claims.return_to)
    if not 16 <= len(claims.nonce) <= 128:  # noqa: PLR2004
        raise StaffSsoRefused("malformed", "nonce: 16 to 128 characters")
    with engine.connect() as conn:
        public = conn.execute(
            sa.select(branch_credentials.c.public_key).where(
                branch_credentials.c.tenant_id == claims.tenant, branch_credentials.c.branch_id == claims.branch_id
            )
        ).scalar()
    if public is None:
        raise StaffSsoRefused("signature", "unknown branch")
    try:
        verify_signed_request(text, public, int(now.timestamp()))
    except SsoMessageRefused as exc:
        raise StaffSsoRefused(exc.code, str(exc)) from None
    idp = sso.load(engine, claims.tenant)
    if idp is None:
        raise StaffSsoRefused("no_idp", "no single sign-on for this organisation")
    ticket = secrets.token_urlsafe(32)
    flow = StaffFlow(claims.tenant, claims.branch_id, claims.return_to, claims.nonce)
    with transaction(engine) as conn:
        conn.execute(
            sa.delete(sso_flows).where(sso_flows.c.created_at < (now - timedelta(minutes=sso.FLOW_MINUTES)).isoformat())
        )
        conn.execute(sa.insert(sso_flows).values(state_hash=digest(ticket), tenant_id=claims.tenant, protocol=TICKET,
                                                 nonce=claims.nonce, verifier="", next_path=flow.encoded(),
                                                 created_at=now.isoformat()))  # fmt: skip
    return ticket, idp


def take_ticket(engine: Engine, ticket: str, now: datetime) -> StaffFlow:
    """The staff flow of a ticket (single use); raises SsoRefused when unknown, used or stale."""
    flow = sso.finish(engine, ticket, TICKET, now)
    found = StaffFlow.decoded(flow.tenant, flow.next_path)
    if found is None:
        raise StaffSsoRefused("malformed", "not a staff sign-in")
    return found


def _claim(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if isinstance(value, list) and value:
        value = value[0]
    return value.strip() if isinstance(value, str) else ""


def issue_assertion(
    engine: Engine, key: Ed25519PrivateKey, idp: sso.Idp, claims: dict[str, Any], flow: StaffFlow, now: datetime
) -> str:
    """The signed assertion for the central staff account the IdP's user maps to (audited either way)."""
    username = _claim(claims, idp.settings.staff_claim)
    with transaction(engine) as conn:
        row = conn.execute(
            sa.select(staff_accounts).where(
                staff_accounts.c.tenant_id == flow.tenant,
                staff_accounts.c.branch_id == flow.branch_id,
                staff_accounts.c.username == username,
            )
        ).first()
        refusal = "unknown_account" if row is None else ("disabled_account" if not row.active else None)
        record(conn, actor=f"sso:{username or '?'}"[:64], action="staff_sso.refused" if refusal else "staff_sso.signin",
               tenant=flow.tenant, branch=flow.branch_id, target=f"staff {username}"[:200], at=now,
               after={"idp": idp.protocol, **({"reason": refusal} if refusal else {})})  # fmt: skip
    if refusal or row is None:
        log.info("staff SSO for %s/%s refused: %s", flow.tenant, flow.branch_id, refusal)
        raise StaffSsoRefused(refusal or "unknown_account", "no such staff account at this branch")
    issued = int(now.timestamp())
    assertion = StaffAssertion(
        tenant=flow.tenant, branch_id=flow.branch_id, username=row.username, role=row.role,
        counters=json.loads(row.counters), nonce=flow.nonce, jti=secrets.token_urlsafe(16), iat=issued,
        exp=issued + min(ASSERTION_SECONDS, MAX_SECONDS), idp=idp.protocol,
    )  # fmt: skip
    return sign_assertion(assertion, key)


__all__ = ["StaffFlow", "StaffSsoRefused", "accept_request", "issue_assertion", "public_hex", "signing_key",
           "take_ticket"]  # fmt: skip
