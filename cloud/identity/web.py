"""The identity area's routes: the language switch (more follow: sign-in, sign-out, tokens, SSO)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.params import FromPath
from litestar.response import Redirect

LANGUAGES = ("id", "en")
LANG_COOKIE = "qms_lang"


def safe_next(target: str | None) -> str:
    """A local path to go back to (never another site: `//evil`, `https://…` and backslashes become `/`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@get("/lang/{lang:str}", include_in_schema=False)
async def switch_language(lang: FromPath[str], next: str | None = None) -> Response[Any]:
    """Remember the console language (id/en) in a cookie and go back to the page (open to all: sign-in uses it)."""
    response = Redirect(path=safe_next(next), status_code=303)
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True)
    return response


ROUTES: list[Any] = [switch_language]
