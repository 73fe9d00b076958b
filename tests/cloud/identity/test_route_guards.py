"""Every hub route declares who may call it, and each role gets exactly what the permission matrix says: a walk over
the app's routes (the exempt list is explicit), and a role-by-route matrix generated from the hub's OpenAPI schema,
with another tenant's and an out-of-scope branch's ids answering 404."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.testing import TestClient

from cloud.identity import sessions
from cloud.identity.roles import MATRIX
from cloud.web.app import CloudSettings, create_app
from cloud.web.console_auth import ConsoleAuth, console_guard
from tests.cloud.identity.conftest import ACCOUNTS

# Routes anyone may call, each for a reason: monitoring, the public ticket status link (the signed token is the
# secret) and its push/PWA assets, signing in, the language switch, the appliance's first-boot enrolment (the
# one-time code is the secret), SSO callbacks (the IdP's signed answer is the proof), provider delivery webhooks
# (signed by the provider), the API schema.
EXEMPT = (
    r"/api/v1/health", r"/metrics", r"/t/\{token:str\}(/.*)?", r"/push-sw\.js", r"/status-notify\.js",
    r"/status-icon\.svg", r"/signin", r"/lang/\{lang:str\}", r"/api/v1/enrol", r"/sso/.*", r"/schema(/.*)?",
    r"/t/[\w.-]+\.(js|svg)", r"/api/v1/notify/webhooks/.*", r"/static/.*",
    r"/book/.*", r"/api/v1/appointments/\{tenant:str\}/\{branch_id:str\}/slots",  # customers' public booking
    r"/api/v1/releases/assigned/.*", r"/api/v1/releases/\{version:str\}/files/.*",  # signed manifests and bundles
    r"/api/v1/releases/report",  # an appliance's report, verified by its NKey signature
    r"/api/v1/backups/\{tenant:str\}/\{branch_id:str\}/\{name:str\}",  # an appliance's sealed backup, NKey-signed
    r"/api/v1/tls/renew",  # an appliance's certificate renewal, NKey-signed
    r"/api/v1/bi/\{dataset:str\}",  # BI datasets: their own check, a tenant's BI token (cloud/analytics/bi.py)
)  # fmt: skip
SIGNED_IN_ONLY = {"/signout", "/api/v1/me"}  # any signed-in caller, whatever the role
TENANT, BRANCH, OTHER_BRANCH = "acme", "jkt-sudirman", "bdg-dago"


def handlers(app: Litestar) -> Iterator[tuple[str, str, HTTPRouteHandler]]:
    """(method, path, handler) for every route but the automatic OPTIONS."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods - {"OPTIONS"}):
                yield method, route.path, handler


def permission_of(handler: HTTPRouteHandler) -> str | None:
    for guard in handler.resolve_guards():
        if (permission := getattr(guard, "permission", None)) is not None:
            return str(permission)
    return None


@pytest.fixture(scope="module")
def app() -> Litestar:
    return create_app(CloudSettings(db_url="sqlite://"))


def streams(handler: HTTPRouteHandler) -> bool:
    """A Server-Sent Events or streaming route (never ends by itself: only its guard is checked here)."""
    annotation = str(handler.parsed_fn_signature.return_type.annotation)
    return "ServerSentEvent" in annotation or "Stream" in annotation


def test_every_route_has_a_guard_or_is_explicitly_exempt(app: Litestar) -> None:
    unguarded = []
    for method, path, handler in handlers(app):
        if any(re.fullmatch(pattern, path) for pattern in EXEMPT):
            continue
        if path in SIGNED_IN_ONLY:
            assert console_guard in handler.resolve_guards(), path
            continue
        if permission_of(handler) is None:
            unguarded.append(f"{method} {path}")
    assert not unguarded, f"routes without requires(<permission>) and not in EXEMPT: {unguarded}"


def fill(path: str, branch: str) -> str:
    """A concrete URL for a schema path: the scoped tenant/branch, dummies elsewhere."""
    values = {"tenant": TENANT, "tenant_id": TENANT, "branch_id": branch, "branch": branch}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), path)


def call(client: TestClient, method: str, url: str, headers: dict[str, str]) -> int:
    body: dict[str, Any] = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
    return client.request(method, url, headers=headers, follow_redirects=False, **body).status_code


def test_role_by_route_matrix_from_the_openapi_schema(identity_store: str) -> None:
    app = create_app(CloudSettings(db_url=identity_store))
    auth: ConsoleAuth = app.state["console_auth"]
    guarded = {(m, p): permission_of(h) for m, p, h in handlers(app)}
    endless = {(m, p) for m, p, h in handlers(app) if streams(h)}
    schema = app.openapi_schema.to_schema()
    operations = [(m.upper(), p) for p, item in schema["paths"].items() for m in item if m.upper() != "OPTIONS"]
    assert ("GET", "/api/v1/branches") in operations
    failures = []
    with TestClient(app=app) as client:
        for username, (role, tenants, branches) in ACCOUNTS.items():
            pairs = frozenset((b.split("/")[0], b.split("/")[1]) for b in branches) or None
            grant = sessions.SessionGrant(username, role, None if tenants == ["*"] else frozenset(tenants), pairs,
                                          "session")  # fmt: skip
            raw = sessions.start(auth.engine, grant, auth.clock(), auth.policy, "test")
            headers = {"cookie": f"qms_session={raw}", "x-csrftoken": sessions.csrf_token_of(raw)}
            for method, path in operations:
                permission = guarded.get((method, _route_path(path, guarded)))
                if permission is None:
                    continue  # exempt or signed-in-only (covered above)
                has = permission in MATRIX[role]
                if has and (method, _route_path(path, guarded)) in endless:
                    continue
                in_scope = grant.tenants is None or TENANT in grant.tenants
                in_scope = in_scope and (grant.branches is None or (TENANT, BRANCH) in grant.branches)
                status = call(client, method, fill(path, BRANCH), headers)
                if not has:
                    expected_ok = status == 403
                elif "{tenant" in path and not in_scope:  # 404; or 400 when the body is refused before the
                    expected_ok = status in {400, 404}  # handler looks at the id (which discloses nothing)
                else:
                    expected_ok = status not in {401, 403} and (status < 500 or status == 503)  # 503: no NATS here
                if "{branch" in path and has and grant.branches is not None:  # a branch manager, another branch
                    other = call(client, method, fill(path, OTHER_BRANCH), headers)
                    if other != 404:
                        failures.append(f"{role} {method} {fill(path, OTHER_BRANCH)}: {other}, expected 404")
                if not expected_ok:
                    failures.append(f"{role} {method} {fill(path, BRANCH)} ({permission}): {status}")
    assert failures == []


def _route_path(schema_path: str, guarded: dict[tuple[str, str], str | None]) -> str:
    """The route path (`{tenant:str}`) of an OpenAPI path (`{tenant}`)."""
    for _, route_path in guarded:
        if re.sub(r"\{(\w+):\w+\}", r"{\1}", route_path) == schema_path:
            return route_path
    return schema_path
