"""The web page at `/`, and its script with the Markdown renderer and sanitizer it uses under
`/static` (shipped in the package: no CDN)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

PAGE_CSP = ("default-src 'self'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; "
            "frame-ancestors 'none'")

router = APIRouter()


PAGE = files("streamchat.serve").joinpath("static/index.html").read_text(encoding="utf-8")


def static_files() -> StaticFiles:
    """The page's own files, for `app.mount("/static", ...)` (a router cannot carry a mount)."""
    return StaticFiles(packages=[("streamchat.serve", "static")])


@router.get("/", response_class=HTMLResponse)
async def index() -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"})
