"""The dashboard's app factory."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from dash import Dash

from dashboard.api_client import ApiClient
from dashboard.callbacks import register_callbacks
from dashboard.layout import build_layout
from patentmatch.config import Settings, load_settings

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
# Modules that add to the page: each exposes ``register(app, client)``.
EXTENSION_MODULES = ("dashboard.workflow",)


def create_dash_app(settings: Settings | None = None, client: ApiClient | None = None) -> Dash:
    """Build the Dash app that searches through the API at ``settings.effective_api_url``.

    Args:
        settings: the service settings; ``load_settings()`` when None.
        client: the API client to use; one for ``settings`` when None.

    Returns:
        The app; serve it with ``app.run(...)`` or through its Flask ``app.server``.
    """
    settings = settings or load_settings()
    # The client waits a little longer than the API's own request time limit, so
    # the API's 503/504 reply arrives before the client gives up.
    client = client or ApiClient(settings.effective_api_url,
                                 timeout_s=settings.request_timeout_s + 5.0)
    app = Dash(
        __name__,
        title="유사 특허 탐색",
        assets_folder=str(ASSETS),
        update_title="검색 중…",
    )
    app.layout = build_layout(client.base_url)
    register_callbacks(app, client)
    _register_extensions(app, client)
    logger.info("dashboard built for the API at %s", client.base_url)
    return app


def _register_extensions(app: Dash, client: ApiClient) -> None:
    for name in EXTENSION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            logger.debug("dashboard extension %s is not installed", name)
            continue
        module.register(app, client)
        logger.info("dashboard extension %s registered", name)
