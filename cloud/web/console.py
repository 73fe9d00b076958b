"""The console's overview page (`/`, id/en), its JSON twin, and its live stream: the page opens one Server-Sent Events
stream (`/overview/live`) that sends the re-rendered tables after every applied batch and at least every
`LIVE_SECONDS`, instead of reloading itself. The stream never restarts the session's idle clock (an unattended page
must not keep a session open): it checks the session without touching it and ends with `event: ended` when the session
is over. The lifespan also sweeps expired sessions from the store on a schedule (QMS_HUB_SESSION_SWEEP_SECONDS)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, MediaType, Request, get
from litestar.response import ServerSentEvent, ServerSentEventMessage, Template

from cloud.console import overview
from cloud.identity import sessions
from cloud.identity.permissions import requires
from cloud.web.console_auth import SESSION_METHODS, ConsoleAuth, HqPrincipal
from cloud.web.request_state import store_engine as _engine

LIVE_SECONDS = 10.0  # the stream's longest pause: liveness (heartbeats) and ages move without an applied batch
LIVE_SECONDS_KEY = "overview_live_seconds"  # app.state may set it (tests)
LANG_COOKIE = "qms_lang"

WORDS: dict[str, dict[str, str]] = {
    "id": {
        "title": "Ringkasan", "branches": "Cabang", "queues": "Antrean langsung", "events": "Peristiwa di semua cabang",
        "tenant": "Tenant", "branch": "Cabang", "heartbeat": "Detak", "link": "Tautan", "n_events": "Peristiwa",
        "last_event": "Peristiwa terakhir", "seconds_since": "Detik sejak", "config": "Versi konfigurasi",
        "problem": "Masalah", "service": "Layanan", "waiting": "Menunggu", "called": "Dipanggil", "serving": "Dilayani",
        "type": "Jenis", "count": "Jumlah", "none": "Belum ada cabang yang bereplikasi.", "runs": "menjalankan",
        "cloud": "HQ", "rejected": "ditolak", "parked": "diparkir", "replicated": "peristiwa tereplikasi",
        "updated": "diperbarui", "live": "langsung", "reconnecting": "menyambung ulang…",
        "ended": "Sesi berakhir. Masuk lagi untuk melanjutkan.", "signin": "Masuk",
        "online": "daring", "offline": "luring", "offline_since": "luring sejak",
        "never connected": "belum pernah terhubung",
        "ok": "baik", "quiet": "sepi", "gap": "celah", "chain_broken": "rantai rusak",
        "never_connected": "belum pernah terhubung",
    },
    "en": {
        "title": "Overview", "branches": "Branches", "queues": "Live queues", "events": "Events across branches",
        "tenant": "Tenant", "branch": "Branch", "heartbeat": "Heartbeat", "link": "Link", "n_events": "Events",
        "last_event": "Last event", "seconds_since": "Seconds since", "config": "Config version",
        "problem": "Problem", "service": "Service", "waiting": "Waiting", "called": "Called", "serving": "Serving",
        "type": "Type", "count": "Count", "none": "No branch has replicated yet.", "runs": "runs",
        "cloud": "HQ", "rejected": "rejected", "parked": "parked", "replicated": "events replicated",
        "updated": "updated", "live": "live", "reconnecting": "reconnecting…",
        "ended": "Your session has ended. Sign in again to continue.", "signin": "Sign in",
        "online": "online", "offline": "offline", "offline_since": "offline since",
        "never connected": "never connected",
        "ok": "ok", "quiet": "quiet", "gap": "gap", "chain_broken": "chain broken",
        "never_connected": "never connected",
    },
}  # fmt: skip


def _lang(request: Request[Any, Any, Any]) -> str:
    """`?lang=`, then the console's language cookie, else Indonesian."""
    for value in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if value in WORDS:
            return str(value)
    return "id"


def scoped_overview(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The overview limited to what the caller may see: its tenants, and a branch manager's branches."""
    viewer: HqPrincipal = request.scope["user"]
    data = overview(_engine(request), tenants=viewer.tenants)
    data["branches"] = [b for b in data["branches"] if viewer.sees_branch(b.tenant, b.branch_id)]
    return {**data, "viewer": viewer.as_dict()}


def _context(request: Request[Any, Any, Any]) -> dict[str, Any]:
    lang = _lang(request)
    return {**scoped_overview(request), "lang": lang, "w": WORDS[lang], "request": request, "active": "overview"}


@get("/", guards=[requires("branches.read")])
async def console(request: Request[Any, Any, Any]) -> Template:
    """The overview: branches with heartbeat, link and config version, live queues, event counts; kept current by
    its live stream."""
    context = await asyncio.to_thread(_context, request)
    return Template(template_name="console.html", context=context, media_type=MediaType.HTML,
                    headers={"Cache-Control": "no-store"})  # fmt: skip


@get("/api/v1/branches", guards=[requires("branches.read")])
async def branches_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The overview as JSON (for automation and tests)."""
    data = await asyncio.to_thread(scoped_overview, request)
    return {**data, "branches": [b.as_dict() for b in data["branches"]]}


def _session_alive(request: Request[Any, Any, Any]) -> bool:
    """Whether the caller's sign-in session still holds (checked without restarting its idle clock); callers without
    a session (token, Basic, an open console) hold as long as the stream."""
    viewer: HqPrincipal = request.scope["user"]
    raw = request.cookies.get(sessions.COOKIE)
    if viewer.auth_method not in SESSION_METHODS or not raw:
        return True
    auth: ConsoleAuth = request.app.state["console_auth"]
    return sessions.alive(auth.engine, raw, auth.clock(), auth.policy)


def live_stream(request: Request[Any, Any, Any], event: str, render: Callable[[], str]) -> ServerSentEvent:
    """A page's live stream: `event` with `render()` at once, after each applied batch and at least every
    `LIVE_SECONDS`; `event: ended` (then the stream closes) once the caller's session is over. It never restarts the
    session's idle clock."""
    seconds = float(request.app.state.get(LIVE_SECONDS_KEY, LIVE_SECONDS))
    feed = request.app.state.get("analytics_live")  # cloud/analytics/live.py: moves after every applied batch

    async def stream() -> AsyncIterator[ServerSentEventMessage]:
        seen = feed.version if feed is not None else 0
        while await asyncio.to_thread(_session_alive, request):
            yield ServerSentEventMessage(event=event, data=await asyncio.to_thread(render))
            if feed is not None:
                seen = await feed.wait(seen, seconds)
            else:
                await asyncio.sleep(seconds)
        yield ServerSentEventMessage(event="ended", data="session")

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def render_fragment(request: Request[Any, Any, Any], name: str, context: dict[str, Any]) -> str:
    """A template rendered alone (a page's live part), with the app's template engine."""
    engine = request.app.template_engine
    assert engine is not None
    return str(engine.get_template(name).render(**context))


@get("/overview/live", guards=[requires("branches.read")])
async def overview_live(request: Request[Any, Any, Any]) -> ServerSentEvent:
    """`event: overview` with the re-rendered tables after each applied batch and at least every `LIVE_SECONDS`;
    `event: ended` (then the stream closes) once the caller's session is over."""
    return live_stream(request, "overview", lambda: render_fragment(request, "console_live.html", _context(request)))


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
    """Sweep expired sign-in sessions every QMS_HUB_SESSION_SWEEP_SECONDS (default 300, 0 = off) with the console's
    clock and session policy."""
    seconds = sessions.sweep_seconds()
    auth: ConsoleAuth = app.state["console_auth"]
    task = None
    if seconds > 0:
        task = asyncio.create_task(
            sessions.sweep_every(auth.engine, auth.clock, auth.policy, seconds), name="session-sweep"
        )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


ROUTES: list[Any] = [console, branches_json, overview_live]
