"""BI API (US-ANALYT-006): read-only datasets for a tenant's BI tool, behind tokens of their own.

A BI token belongs to a tenant (not to a person, so it survives staff changes), names the datasets it may read
(`tickets` = one fact row per ticket, `kpis` = the daily rollups per branch and service) and expires. It is
`qms_bi_<id>_<secret>`, shown once; the hub keeps only its SHA-256 (the secret is 256 random bits, so a plain digest is
enough). Tenant admins manage them (`tokens.manage`); the dataset routes carry no console guard — the BI token is their
own check (they are on the route-guard test's exempt list for that reason).

Pages are keyset pages in a stable order (local date, branch, ticket or service) with an opaque cursor, so a client
walking a large tenant never skips or repeats a row while new facts arrive. Each token has its own budget
(QMS_BI_RATE, default 60/minute, in the process like the hub's other limits): over it, 429 problem+json with
`Retry-After`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath
from sqlalchemy.engine import Engine

from cloud.admin.audit import record
from cloud.analytics.tables import bi_tokens, daily, facts
from cloud.identity.permissions import requires
from cloud.identity.tokens import hidden_characters
from cloud.store import transaction
from cloud.web.request_state import store_engine as _engine
from sync.rate_limit import Limit, RateLimiter

PREFIX = "qms_bi_"
DATASETS = {"tickets": facts, "kpis": daily}
# The stable order of each dataset inside a tenant (the facts' day index; the daily rollups' key).
ORDER = {
    "tickets": ("local_date", "branch_id", "ticket_id"),
    "kpis": ("local_date", "branch_id", "service_id"),
}
MAX_DAYS, MAX_LIMIT, DEFAULT_LIMIT, MAX_NAME = 366, 1000, 500, 120
RATE_ENV = "QMS_BI_RATE"
PROBLEM = "application/problem+json"


class BiRequestError(ValueError):
    """A malformed BI request (400)."""


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A new BI token: its tenant, a name, the datasets it may read, its lifetime in days."""

    tenant: str
    name: str
    datasets: list[str]
    days: int = 90


@dataclass(frozen=True)
class BiToken:
    """A verified token: whose data it reads and which datasets."""

    token_id: str
    tenant_id: str
    datasets: frozenset[str]


def digest(raw: str) -> str:
    """SHA-256 hex of the whole presented token."""
    return hashlib.sha256(raw.encode()).hexdigest()


def validate(req: TokenRequest) -> None:
    """Refuse an unknown dataset, an empty list, a bad name or lifetime (BiRequestError)."""
    unknown = sorted(set(req.datasets) - set(DATASETS))
    if unknown or not req.datasets:
        raise BiRequestError(f"datasets: one or more of {', '.join(sorted(DATASETS))} (not {', '.join(unknown)})")
    if not 1 <= req.days <= MAX_DAYS:
        raise BiRequestError(f"days: 1 to {MAX_DAYS}")
    if not req.name.strip() or len(req.name) > MAX_NAME:
        raise BiRequestError(f"name: 1-{MAX_NAME} characters")
    if hidden := hidden_characters(req.name):
        raise BiRequestError(f"name: no control or format characters ({', '.join(hidden[:5])})")


def issue(engine: Engine, req: TokenRequest, actor: str, now: datetime) -> tuple[str, dict[str, Any]]:
    """Store a new token (its digest only) and return the raw token, once, with what is listed about it."""
    validate(req)
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    raw = f"{PREFIX}{token_id}_{secret}"
    expires = (now + timedelta(days=req.days)).isoformat()
    row = {"token_id": token_id, "tenant_id": req.tenant, "name": req.name.strip(), "secret_sha256": digest(raw),
           "datasets": json.dumps(sorted(set(req.datasets))), "expires_at": expires,
           "revoked": False, "last_used_at": None, "created_by": actor, "created_at": now.isoformat()}  # fmt: skip
    with transaction(engine) as conn:
        conn.execute(sa.insert(bi_tokens).values(**row))
        record(conn, actor=actor, action="bi_token.issue", tenant=req.tenant, target=token_id, at=now,
               after={"name": row["name"], "datasets": sorted(set(req.datasets)), "expires_at": expires})  # fmt: skip
    return raw, _listed(row)


def _listed(row: Any) -> dict[str, Any]:
    """A token as listed: never its digest."""
    data = dict(row) if isinstance(row, dict) else dict(row._mapping)
    data.pop("secret_sha256", None)
    data["datasets"] = json.loads(data["datasets"])
    return data


def list_tokens(engine: Engine, tenants: frozenset[str] | None) -> list[dict[str, Any]]:
    """The tokens of these tenants (None = all), newest first."""
    query = sa.select(bi_tokens).order_by(bi_tokens.c.created_at.desc(), bi_tokens.c.token_id)
    if tenants is not None:
        query = query.where(bi_tokens.c.tenant_id.in_(sorted(tenants)))
    with engine.connect() as conn:
        return [_listed(r) for r in conn.execute(query)]


def revoke(engine: Engine, token_id: str, tenants: frozenset[str] | None, actor: str = "open") -> bool:
    """Revoke a token of these tenants (audited); False when there is none (unknown or another tenant's)."""
    query = sa.select(bi_tokens.c.tenant_id).where(bi_tokens.c.token_id == token_id)
    if tenants is not None:
        query = query.where(bi_tokens.c.tenant_id.in_(sorted(tenants)))
    with transaction(engine) as conn:
        tenant = conn.execute(query).scalar_one_or_none()
        if tenant is None:
            return False
        conn.execute(sa.update(bi_tokens).where(bi_tokens.c.token_id == token_id).values(revoked=True))
        record(conn, actor=actor, action="bi_token.revoke", tenant=tenant, target=token_id, at=datetime.now(UTC))
    return True


def verify(engine: Engine, raw: str, now: datetime) -> BiToken | None:
    """The token presented, or None when malformed, unknown, revoked or expired (compared in constant time)."""
    if not raw.startswith(PREFIX):
        return None
    token_id, sep, _ = raw[len(PREFIX) :].partition("_")
    if not sep or not token_id:
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(bi_tokens).where(bi_tokens.c.token_id == token_id)).first()
    if row is None or not hmac.compare_digest(row.secret_sha256, digest(raw)):
        return None
    if row.revoked or now >= datetime.fromisoformat(row.expires_at):
        return None
    if row.last_used_at is None or now - datetime.fromisoformat(row.last_used_at) >= timedelta(minutes=1):
        with transaction(engine) as conn:
            used = sa.update(bi_tokens).where(bi_tokens.c.token_id == token_id)
            conn.execute(used.values(last_used_at=now.isoformat()))
    return BiToken(row.token_id, row.tenant_id, frozenset(json.loads(row.datasets)))


def encode_cursor(values: list[Any]) -> str:
    """The opaque cursor after a row: its order key, base64url JSON."""
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, width: int) -> list[str]:
    """The order key in a cursor; BiRequestError when it is not one of ours."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BiRequestError("cursor: not a cursor from this API") from exc
    if not isinstance(values, list) or len(values) != width or not all(isinstance(v, str) for v in values):
        raise BiRequestError("cursor: not a cursor from this API")
    return values


def page(engine: Engine, tenant: str, dataset: str, params: dict[str, str]) -> dict[str, Any]:
    """One keyset page of a dataset: `{"items": [...], "next_cursor": str | None}`; filters `from`, `to` (local
    dates), `branch_id`, `limit` (1..1000), `cursor`."""
    table, order = DATASETS[dataset], ORDER[dataset]
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
    except ValueError as exc:
        raise BiRequestError("limit: a whole number") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise BiRequestError(f"limit: 1 to {MAX_LIMIT}")
    query = sa.select(table).where(table.c.tenant_id == tenant)
    for name, op in (("from", "__ge__"), ("to", "__le__")):
        if name in params:
            value = params[name]
            try:
                datetime.strptime(value, "%Y-%m-%d")
            except ValueError as exc:
                raise BiRequestError(f"{name}: a date YYYY-MM-DD") from exc
            query = query.where(getattr(table.c.local_date, op)(value))
    if params.get("branch_id"):
        query = query.where(table.c.branch_id == params["branch_id"])
    columns = [table.c[name] for name in order]
    if params.get("cursor"):
        query = query.where(sa.tuple_(*columns) > sa.tuple_(*decode_cursor(params["cursor"], len(order))))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query.order_by(*columns).limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor([str(rows[-1][name]) for name in order]) if more else None
    return {"dataset": dataset, "items": rows, "next_cursor": cursor}


def _problem(status: int, title: str, detail: str, code: str, headers: dict[str, str] | None = None) -> Response[Any]:
    body = {"type": f"urn:qms:problem:{code}", "title": title, "status": status, "detail": detail, "code": code}
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def _limiter(request: Request[Any, Any, Any]) -> RateLimiter:
    """This replica's per-token limiter (made on first use from QMS_BI_RATE)."""
    state = request.app.state
    if state.get("bi_limiter") is None:
        state["bi_limiter"] = RateLimiter(Limit.parse(os.environ.get(RATE_ENV, "60/minute")))
    limiter: RateLimiter = state["bi_limiter"]
    return limiter


@post("/api/v1/bi/tokens", status_code=201, guards=[requires("tokens.manage")])
async def create_token(request: Request[Any, Any, Any]) -> Response[Any]:
    """Issue a BI token for one of the caller's tenants: `{"tenant", "name", "datasets": ["tickets", "kpis"],
    "days"}`. The answer carries `token` — the only time it is shown."""
    me = request.scope["user"]
    try:
        req = msgspec.json.decode(await request.body(), type=TokenRequest)
        if not me.sees_tenant(req.tenant):
            return _problem(404, "not found", f"no tenant {req.tenant!r}", "not_found")
        raw, info = await asyncio.to_thread(issue, _engine(request), req, me.username or "open", datetime.now(UTC))
    except (msgspec.DecodeError, msgspec.ValidationError, BiRequestError) as exc:
        return _problem(400, "bad request", str(exc), "bad_request")
    return Response({**info, "token": raw}, status_code=201, headers={"Cache-Control": "no-store"})


@get("/api/v1/bi/tokens", sync_to_thread=True, guards=[requires("tokens.manage")])
def tokens_list(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The BI tokens of the caller's tenants (never their secrets)."""
    return {"tokens": list_tokens(_engine(request), request.scope["user"].tenants)}


@delete("/api/v1/bi/tokens/{token_id:str}", status_code=200, sync_to_thread=True, guards=[requires("tokens.manage")])
def token_revoke(request: Request[Any, Any, Any], token_id: FromPath[str]) -> Response[Any]:
    """Revoke a BI token; another tenant's or an unknown one is 404."""
    me = request.scope["user"]
    if not revoke(_engine(request), token_id, me.tenants, me.username or "open"):
        return _problem(404, "not found", "no such BI token", "not_found")
    return Response({"token_id": token_id, "revoked": True})


@get("/api/v1/bi/{dataset:str}", sync_to_thread=True)
def dataset_page(request: Request[Any, Any, Any], dataset: FromPath[str]) -> Response[Any]:
    """A page of a dataset (`tickets`, `kpis`) of the token's tenant: `Authorization: Bearer qms_bi_…`; query
    `from`, `to`, `branch_id`, `limit`, `cursor` (the previous page's `next_cursor`). 401 without a valid token, 403
    for a dataset outside its scopes, 429 with `Retry-After` over its rate."""
    scheme, _, raw = request.headers.get("authorization", "").partition(" ")
    token = verify(_engine(request), raw.strip(), datetime.now(UTC)) if scheme.lower() == "bearer" else None
    if token is None:
        return _problem(401, "unauthorized", "a valid BI token is required", "unauthorized",
                        {"WWW-Authenticate": 'Bearer realm="qms-bi"'})  # fmt: skip
    if wait := _limiter(request).take(f"bi:{token.token_id}"):
        return _problem(429, "too many requests", f"this BI token's rate is spent; try again in {wait} s",
                        "too_many_requests", {"Retry-After": str(wait)})  # fmt: skip
    if dataset not in DATASETS:
        return _problem(404, "not found", f"no dataset {dataset!r}", "not_found")
    if dataset not in token.datasets:
        return _problem(403, "forbidden", f"this token may not read {dataset!r}", "forbidden")
    try:
        body = page(_engine(request), token.tenant_id, dataset, dict(request.query_params.items()))
    except BiRequestError as exc:
        return _problem(400, "bad request", str(exc), "bad_request")
    return Response(body, headers={"Cache-Control": "no-store"})


ROUTES: list[Any] = [create_token, tokens_list, token_revoke, dataset_page]
