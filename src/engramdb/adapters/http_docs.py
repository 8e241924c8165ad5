"""``/docs`` (Swagger UI) and ``/redoc`` for the OpenAPI schema, served from this
server alone.

FastAPI's default pages load their scripts and stylesheets from a CDN, so they
are blank offline or behind a firewall. Here the assets come from the
``fastapi-offline`` package (part of the ``server`` extra: Swagger UI 5, which
reads OpenAPI 3.1, and ReDoc), mounted at ``/docs/assets/``; neither page names
any other host (ReDoc's web fonts are off).
"""

# No ``from __future__ import annotations``: FastAPI reads endpoint annotations at runtime.

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "assets_dir", "mount_docs"]

#: Where the pages find their files.
ASSETS = "/docs/assets"


def assets_dir() -> Path:
    """The directory of Swagger UI's and ReDoc's files in the installed package."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` for ``app`` (created with ``docs_url=None`` and
    ``redoc_url=None``) from local assets."""
    app.mount(ASSETS, StaticFiles(directory=str(assets_dir())), name="docs-assets")
    openapi = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi, title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi, title=f"{app.title} API",
                              redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS}/favicon.png",
                              with_google_fonts=False)
