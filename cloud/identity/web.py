"""The identity area's routes: language switch, sign-in/out, API tokens, SSO; `cloud.web.app` mounts `ROUTES`."""

from __future__ import annotations

from typing import Any

from cloud.identity import signin, sso_console, sso_web, tokens_api

ROUTES: list[Any] = [*signin.ROUTES, *tokens_api.ROUTES, *sso_web.ROUTES, *sso_console.ROUTES]
