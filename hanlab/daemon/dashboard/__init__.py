"""The lab dashboard: a static single-page app served by the daemon (issue 9 item 5).

The page (``static/index.html``, ``app.js``, ``style.css`` and the vendored uPlot charting
library in ``static/vendor/``) is package data; it needs no build step and no internet. It
polls the control API (``/api/v1/...``) once a second with the bearer token the user
gives it (URL fragment ``#token=...`` or its login box), so the static files themselves
need no authentication: they hold no lab data.

Routes added by :func:`add_routes`:

- ``GET /``, ``GET /dashboard``: redirect to ``/dashboard/`` (a URL fragment such as
  ``#token=...`` survives the redirect: browsers keep it).
- ``GET /dashboard/``: ``index.html``.
- ``GET /dashboard/{path}``: one file below ``static/``; anything outside it (``..``,
  absolute paths, hidden files, unknown file types) is 404.

Every response carries a Content-Security-Policy allowing only the daemon's own origin
(scripts, styles, API calls), so the page cannot load or send anything elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web

__all__ = ["STATIC_DIR", "add_routes"]

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
"""The folder of the dashboard's files (package data)."""

_CONTENT_TYPES: Final = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

_SECURITY_HEADERS: Final = {
    # Only this origin: the page's own scripts and styles, and fetches to the API. uPlot
    # positions its elements with inline styles, hence 'unsafe-inline' for styles only.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def add_routes(app: web.Application) -> None:
    """Add the dashboard's routes (``/``, ``/dashboard``, ``/dashboard/{path}``) to ``app``.

    The files are read from :data:`STATIC_DIR` on each request (they are small; a
    ``Cache-Control: no-cache`` header makes browsers revalidate them, so an upgraded
    daemon never serves a stale page). No authentication: the files hold no lab data.

    Args:
        app: the control API's application (before it is started).
    """
    app.router.add_get("/", _redirect)
    app.router.add_get("/dashboard", _redirect)
    app.router.add_get("/dashboard/", _index)
    app.router.add_get("/dashboard/{path:.+}", _static)


async def _redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/dashboard/")


async def _index(request: web.Request) -> web.StreamResponse:
    return _file_response(request, STATIC_DIR / "index.html")


async def _static(request: web.Request) -> web.StreamResponse:
    path = _resolve(request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound(text="no such dashboard file\n")
    return _file_response(request, path)


def _resolve(relative: str) -> Path | None:
    """The file below :data:`STATIC_DIR` named by ``relative``, or ``None``."""
    parts = relative.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") or "\\" in part
           for part in parts):
        return None
    path = STATIC_DIR.joinpath(*parts).resolve()
    if not path.is_relative_to(STATIC_DIR) or path.suffix not in _CONTENT_TYPES:
        return None
    return path if path.is_file() else None


def _file_response(request: web.Request, path: Path) -> web.StreamResponse:
    headers = {**_SECURITY_HEADERS, "Cache-Control": "no-cache",
               "Content-Type": _content_type(path)}
    return web.FileResponse(path, headers=headers)


def _content_type(path: Path) -> str:
    kind = _CONTENT_TYPES[path.suffix]
    return f"{kind}; charset=utf-8" if kind.startswith("text/") else kind
