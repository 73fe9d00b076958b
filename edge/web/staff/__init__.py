"""The staff web app: server-rendered pages for agents, supervisors and the branch admin, under `/staff`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router, get
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from edge.analytics.pages import ReportPages
from edge.web.staff.admin import AdminPages
from edge.web.staff.offline_refused import OfflineRefusedPages
from edge.web.staff.pages import AuthPages, DeskPages, wants_json
from edge.web.staff.render import STATIC, TEMPLATES, render, translator
from edge.web.staff.session import NotSignedIn, Refused, current_staff
from edge.web.staff.sso import SsoPages
from edge.web.staff.supervisor import SupervisorPages

REFUSALS = {
    "role": "Your role does not give access to this page.",
    "counter": "This counter is not assigned to you.",
    "service": "Your counter does not serve this ticket's service.",
    "csrf": "The form expired. Reload the page and try again.",
    "no_counter": "No counter is assigned to you. Ask your supervisor.",
    "not_found": "Not found.",
    "not_configured": "The branch has no configuration yet.",
    "input": "The request was not understood.",
}


def on_not_signed_in(request: Request[Any, Any, Any], _exc: NotSignedIn) -> Response[Any]:
    """To the login page, coming back here afterwards (script requests get a 401 they can act on)."""
    if wants_json(request) or request.url.path.endswith(("/live", "/events")):
        return Response({"ok": False, "message": "signed out", "login": True}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/staff/login?next={quote(target)}", status_code=303)


def on_refused(request: Request[Any, Any, Any], exc: Refused) -> Response[Any] | Template:
    """The "not allowed" page (or JSON for the page's script)."""
    message = translator(request)(REFUSALS.get(exc.message, REFUSALS["input"]))
    if wants_json(request):
        return Response({"ok": False, "message": message, "retry": False}, status_code=exc.status)
    return render(request, "staff/refused.html", current_staff(request), exc.status, message=message)


@get("/", sync_to_thread=False, include_in_schema=False)
def root() -> Redirect:
    """The appliance's address in a browser opens the staff app."""
    return Redirect("/staff/")


def staff_router() -> Router:
    """The `/staff` pages and their static files."""
    return Router(
        path="/",
        route_handlers=[
            root,
            AuthPages,
            SsoPages,
            DeskPages,
            SupervisorPages,
            OfflineRefusedPages,
            AdminPages,
            ReportPages,
            create_static_files_router(path="/static", directories=[STATIC], cache_control=None),
        ],
        exception_handlers={NotSignedIn: on_not_signed_in, Refused: on_refused},
        include_in_schema=False,
    )


def template_config() -> TemplateConfig[Any]:
    """Jinja templates of the staff pages (autoescaped)."""
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)
