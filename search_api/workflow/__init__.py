"""Demand registry and match workflow: demands, recommendations, e-mail to rights
holders, their answers, and the status a company follows.

``setup(app)`` adds the routes (see :mod:`search_api.workflow.routes`) and a
``cleanup_ctx`` that opens an Elasticsearch client, creates the indices and runs
the outbox worker as a background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from elasticsearch import AsyncElasticsearch

from patentmatch.config import Settings, load_settings
from search_api.workflow.lifecycle import (
    Answer,
    InvalidTransition,
    Status,
    WorkflowError,
    utc_now,
)
from search_api.workflow.outbox import Clock, RetryPolicy
from search_api.workflow.routes import ROUTES, WORKFLOW
from search_api.workflow.service import Recommend, Workflow

logger = logging.getLogger(__name__)

__all__ = ["setup", "Workflow", "WORKFLOW", "Recommend", "RetryPolicy", "Status", "Answer",
           "InvalidTransition", "WorkflowError", "search_service_recommender"]


def search_service_recommender(app: web.Application) -> Recommend:
    """Return a ranking function that runs the API's own search on a demand.

    The search service is looked up at call time because the API creates it in
    its own ``cleanup_ctx``, after ``setup`` has run.
    """

    async def recommend(demand: dict) -> list[dict]:
        from search_api.app import DEFAULT_MODE, SERVICE
        from search_api.schema import parse_search_request

        body = {key: value for key, value in demand.items() if value is not None}
        request = parse_search_request(body, app[DEFAULT_MODE])
        reply = await app[SERVICE].search(request)
        return reply["results"]

    return recommend


def _settings_of(app: web.Application) -> Settings:
    try:
        from search_api.app import SETTINGS
    except ImportError:
        return load_settings()
    return app[SETTINGS] if SETTINGS in app else load_settings()


def setup(app: web.Application, settings: Settings | None = None, *,
          recommend: Recommend | None = None, es: AsyncElasticsearch | None = None,
          policy: RetryPolicy | None = None, run_worker: bool = True,
          clock: Clock = utc_now) -> None:
    """Add the workflow's routes and resources to an aiohttp application.

    Args:
        app: the application; ``search_api.app.create_app`` passes its own.
        settings: None takes the API's settings from the app, else loads them.
        recommend: ranking function; None runs the API's search service.
        es: an Elasticsearch client to share (the caller closes it); None opens one
            on ``settings.es_url`` (or the local node's port) and closes it on cleanup.
        policy: outbox retry timing; None takes the defaults of ``RetryPolicy``.
        run_worker: False leaves e-mail delivery to someone calling
            ``Workflow.outbox.process_due()`` (tests step through retries that way).
        clock: the current time in UTC; tests pass a clock they can move forward.
    """
    settings = settings or _settings_of(app)
    recommend = recommend or search_service_recommender(app)

    async def workflow_ctx(app: web.Application) -> AsyncIterator[None]:
        client = es or AsyncElasticsearch(
            settings.es_url or f"http://127.0.0.1:{settings.es_port}",
            request_timeout=settings.es_request_timeout_s)
        workflow = Workflow(settings, client, recommend=recommend, policy=policy,
                            clock=clock)
        app[WORKFLOW] = workflow
        worker = asyncio.create_task(_run_worker(workflow)) if run_worker else None
        yield
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if es is None:
            await client.close()

    app.cleanup_ctx.append(workflow_ctx)
    app.add_routes(ROUTES)


async def _run_worker(workflow: Workflow) -> None:
    """Wait for the workflow's indices, then deliver e-mail until cancelled.

    The indices are created by the first workflow request, not here, so an API
    that never registers a demand leaves the cluster untouched. While they are
    missing or Elasticsearch is down, the worker checks again with a growing pause.
    """
    delay = 1.0
    while True:
        try:
            if await workflow.start_if_created():
                dispatched = await workflow.dispatch_waiting()
                if dispatched:
                    logger.info("queued e-mails left waiting for demands %s", dispatched)
                break
        except Exception as exc:  # keep the API up; the worker tries again
            logger.warning("demand workflow not started: %s; retrying in %.0f s", exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, workflow.outbox.policy.poll_interval_s)
    await workflow.outbox.run()
