"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served with no request leaving the machine.

FastAPI's own pages load their scripts, styles and favicon from CDNs, so they are blank offline or behind
an egress filter. These are the same pages (FastAPI's ``get_swagger_ui_html`` and ``get_redoc_html``) with
every asset taken from the npm dist files vendored under ``ui/static/vendor/`` and shipped in the wheel:
Swagger UI 5 because it renders OpenAPI 3.1, which this service's document is.

ReDoc's sidebar shows Redocly's logo from cdn.redoc.ly whatever it is told: each page carries a
Content-Security-Policy naming only this service (and the page's own inline script, by its hash), so the
browser never sends that request and the page reads the same without it.

Who may open them is the access guard's business (``api/guard.py``), decided by path as before: these
routes keep FastAPI's paths; the assets live under ``/ui/static/``, open like the dashboard's own.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

VENDOR = "/ui/static/vendor"
SWAGGER_JS = f"{VENDOR}/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = f"{VENDOR}/swagger-ui/swagger-ui.css"
FAVICON = f"{VENDOR}/swagger-ui/favicon-32x32.png"
REDOC_JS = f"{VENDOR}/redoc/redoc.standalone.js"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
CSP = (
    "default-src 'self'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    """The prefix a proxy mounts the service under (``--root-path``), as FastAPI's own pages use it."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _confined(page: HTMLResponse) -> HTMLResponse:
    """``page`` allowed to load nothing from another host: its inline scripts are allowed by their hash."""
    digests = (hashlib.sha256(script).digest() for script in INLINE_SCRIPT.findall(bytes(page.body)))
    scripts = "".join(f" 'sha256-{base64.b64encode(d).decode()}'" for d in digests)
    page.headers["Content-Security-Policy"] = CSP.format(scripts=scripts)
    return page


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    page = get_swagger_ui_html(
        openapi_url=root + request.app.openapi_url,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=root + SWAGGER_JS,
        swagger_css_url=root + SWAGGER_CSS,
        swagger_favicon_url=root + FAVICON,
        oauth2_redirect_url=root + OAUTH2_REDIRECT,
        # No validator badge calling validator.swagger.io with the document.
        swagger_ui_parameters={"validatorUrl": None},
    )
    return _confined(page)


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return _confined(get_swagger_ui_oauth2_redirect_html())


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    page = get_redoc_html(
        openapi_url=root + request.app.openapi_url,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=root + REDOC_JS,
        redoc_favicon_url=root + FAVICON,
        with_google_fonts=False,
    )
    return _confined(page)
