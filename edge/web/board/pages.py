"""`/board`: the display board page, its state and stream, announcement audio, signage media, service worker."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Controller, Request, Response, Router, get
from litestar.params import FromPath, FromQuery
from litestar.response import File, ServerSentEvent
from litestar.static_files import create_static_files_router

from edge.web.board.access import Scope, key_valid
from edge.web.board.i18n import LABELS, board_lang
from edge.web.board.runtime import BoardRuntime
from edge.web.board.state import board_state, scope_exists, scope_title
from edge.web.problems import ApiError

WEB = Path(__file__).resolve().parent.parent
STATIC = WEB / "static" / "board"
_templates = Environment(
    loader=FileSystemLoader(WEB / "templates" / "board"), autoescape=select_autoescape(default=True), enable_async=False
)


def runtime(request: Request[Any, Any, Any]) -> BoardRuntime:
    """The app's board runtime."""
    board: BoardRuntime = request.app.state["board"]
    return board


def authorize(request: Request[Any, Any, Any], area: str | None, service: str | None, key: str | None) -> Scope:
    """The board's scope, checked against its key and the configuration."""
    if (area is None) == (service is None):
        raise ApiError(400, "board_scope_required", "a board shows one area (?area=) or one service (?service=)")
    scope = Scope("area", area) if area is not None else Scope("service", service or "")
    board = runtime(request)
    view = board.service.view
    if not key_valid(board.secret, view.state.branch_id, scope, key):
        raise ApiError(401, "board_key_invalid", "this board URL is not signed by this appliance (qms-edge board url)")
    if not scope_exists(view.state.config, scope):
        raise ApiError(
            404, "unknown_area" if scope.kind == "area" else "unknown_service", f"no {scope.kind} {scope.id!r}"
        )
    return scope


class BoardPages(Controller):
    """The board page and the data it follows (all read-only, authorised by the signed board key)."""

    path = "/"
    include_in_schema = False

    @get("/", sync_to_thread=False)
    def page(
        self,
        request: Request[Any, Any, Any],
        area: FromQuery[str | None] = None,
        service: FromQuery[str | None] = None,
        key: FromQuery[str | None] = None,
        lang: FromQuery[str | None] = None,
        audio: FromQuery[bool] = False,
    ) -> Response[str]:
        """The board: server-rendered with its current state, then kept live by board.js."""
        try:
            scope = authorize(request, area, service, key)
        except ApiError as exc:
            html = _templates.get_template("refused.html").render(status=exc.status_code, detail=exc.detail)
            return Response(html, status_code=exc.status_code, media_type="text/html")
        board = runtime(request)
        view = board.service.view
        config = view.state.config
        assert config is not None
        language = board_lang(lang, config.languages)
        state = board_state(view, scope)
        html = _templates.get_template("board.html").render(
            config=config,
            branding=config.display.branding,
            title=scope_title(config, scope),
            state=state,
            lang=language,
            t=LABELS[language],
            boot=json.dumps(
                {
                    "scope": {"kind": scope.kind, "id": scope.id},
                    "key": key,
                    "lang": language,
                    "audio": audio,
                    "state": state,
                    "labels": LABELS[language],
                }
            ).replace("</", "<\\/"),
        )
        return Response(html, media_type="text/html", headers={"Cache-Control": "no-store"})

    @get("/state", sync_to_thread=False)
    def state(
        self,
        request: Request[Any, Any, Any],
        area: FromQuery[str | None] = None,
        service: FromQuery[str | None] = None,
        key: FromQuery[str | None] = None,
    ) -> Response[dict[str, Any]]:
        """The board's state now (what the page resyncs from after any reconnect)."""
        scope = authorize(request, area, service, key)
        return Response(board_state(runtime(request).service.view, scope), headers={"Cache-Control": "no-store"})

    @get("/events")
    async def events(
        self,
        request: Request[Any, Any, Any],
        area: FromQuery[str | None] = None,
        service: FromQuery[str | None] = None,
        key: FromQuery[str | None] = None,
    ) -> ServerSentEvent:
        """Server-Sent Events: `state` (the whole board, `id` = seq), `announce` (audio to play), `ping`."""
        scope = authorize(request, area, service, key)
        return ServerSentEvent(
            runtime(request).hub.stream(scope), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    @get("/audio/{area:str}/{name:str}", sync_to_thread=False)
    def audio(
        self,
        request: Request[Any, Any, Any],
        area: FromPath[str],
        name: FromPath[str],
        key: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        """A recent announcement as WAV (`<seq>.wav`), for boards and MQTT speakers."""
        authorize(request, area, None, key)
        seq = name.removesuffix(".wav")
        announcement = runtime(request).announcer.audio(area, int(seq)) if seq.isdigit() else None
        if announcement is None:
            raise ApiError(404, "announcement_not_found", f"no recent announcement {name!r} in area {area!r}")
        return Response(announcement.wav, media_type="audio/wav", headers={"Cache-Control": "private, max-age=600"})

    @get("/media/{name:path}", sync_to_thread=True)
    def media(self, request: Request[Any, Any, Any], name: FromPath[str]) -> File:
        """A signage file from `<data-dir>/board-media/` (cached by boards for a day)."""
        path = runtime(request).media.local(name.lstrip("/"))
        if path is None:
            raise ApiError(404, "media_not_found", f"no signage file {name!r}")
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return File(
            path,
            filename=path.name,
            media_type=media_type,
            content_disposition_type="inline",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @get("/remote", sync_to_thread=True)
    def remote(self, request: Request[Any, Any, Any], src: FromQuery[str]) -> File:
        """A remote playlist item through the appliance's cache (only URLs the playlist names: no open proxy)."""
        board = runtime(request)
        config = board.service.view.state.config
        if config is None or all(s.src != src for s in config.display.playlist):
            raise ApiError(404, "media_not_found", "not a playlist item")
        cached = board.media.remote(src)
        if cached is None:
            raise ApiError(502, "media_unavailable", "the item is neither cached nor reachable")
        return File(
            cached[0],
            filename=cached[0].name,
            media_type=cached[1],
            content_disposition_type="inline",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @get("/sw.js", sync_to_thread=False)
    def service_worker(self) -> Response[bytes]:
        """The boards' service worker (served under /board so its scope covers the page and its media)."""
        return Response(
            (STATIC / "sw.js").read_bytes(),
            media_type="text/javascript",
            headers={"Service-Worker-Allowed": "/board", "Cache-Control": "no-cache"},
        )


def board_router() -> Router:
    """Everything under `/board`, with its static files at `/board/static`."""
    return Router(
        path="/board",
        route_handlers=[
            BoardPages,
            create_static_files_router(path="/static", directories=[STATIC], cache_control=None, name="board_static"),
        ],
        include_in_schema=False,
    )
