"""The dashboard's web application (Starlette): JSON API, live feed, static single-page UI, /metrics.

::

    browser --GET /, /static/*--> vendored HTML/JS/CSS (no CDN, works offline)
            --GET /api/...------> queries.py (read-only, indexed, bounded) --> store
            --GET /api/runs/R/graph?task=N (bounded dependency graph)
            --GET /api/runs/R/events (server-sent events)
                  every `poll` s: status rows with id > cursor --> "status" events
    Prometheus --GET /metrics--> metrics.py --> store

It reads only the store, so it works for a run in progress and for old runs alike,
and it never slows a workflow down: at worst it waits for the database.
When ``token`` is set (``flowlib dashboard --host``), every request must carry it
(``?token=``, the cookie set by the first such request, or ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from flowlib.monitoring.dashboard import queries as q
from flowlib.monitoring.dashboard import resource_queries as rq
from flowlib.monitoring.errors import MonitoringError
from flowlib.monitoring.store import create_engine, current_revision, safe_url

STATIC = os.path.join(os.path.dirname(__file__), "static")
COOKIE = "flowlib_dashboard_token"


class _TokenMiddleware:
    """Pure ASGI (streams pass through untouched): refuse any request without the token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token")
        from_query = given is not None
        if given is None:
            given = request.cookies.get(COOKIE)
        if given is None:
            header = request.headers.get("authorization", "")
            if header.lower().startswith("bearer "):
                given = header[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), self.token):
            refused = PlainTextResponse("403: this dashboard needs its token (printed when it started)", 403)
            await refused(scope, receive, send)
            return
        if not from_query:
            await self.app(scope, receive, send)
            return
        cookie = f"{COOKIE}={self.token.decode()}; HttpOnly; SameSite=Strict; Path=/".encode()

        async def send_with_cookie(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


def _float(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise _BadRequest(f"query parameter {name!r} must be a number, got {value!r}") from None


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(f"query parameter {name!r} must be an integer, got {value!r}") from None


class _BadRequest(Exception):
    pass


def create_app(url: str, *, token: str | None = None, poll: float = 0.2) -> Starlette:
    """The dashboard for the store at ``url``; refuses a URL that has no monitoring schema."""
    engine = create_engine(url, readonly=True)
    try:
        revision = current_revision(engine)
    except sa.exc.SQLAlchemyError as e:
        engine.dispose()
        raise MonitoringError(f"cannot read the monitoring database {safe_url(url)}: {e}") from e
    if revision is None:
        engine.dispose()
        raise MonitoringError(f"{safe_url(url)} holds no flowlib monitoring data (no schema version)")

    graph_cache = q.GraphCache()

    def read(fn: Any, *args: Any, **kwargs: Any) -> Any:
        with engine.connect() as conn:
            return fn(conn, *args, **kwargs)

    async def index(request: Request) -> Response:
        return FileResponse(os.path.join(STATIC, "index.html"), headers={"Cache-Control": "no-store"})

    def api_runs(request: Request) -> Response:
        return _json({"runs": read(q.runs)})

    def api_run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        found = read(q.run, run_id)
        if found is None:
            return _json({"error": f"no run {run_id!r}"}, 404)
        return _json({"run": found, "summary": read(q.summary, run_id), "facets": read(q.facets, run_id)})

    def api_tasks(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        params = request.query_params
        f = q.TaskFilter(
            state=params.get("state") or None,
            app=params.get("app") or None,
            executor=params.get("executor") or None,
            text=params.get("q") or None,
            since=_float(request, "since"),
            until=_float(request, "until"),
        )
        limit = _int(request, "limit", 50)
        assert limit is not None
        return _json(read(q.tasks, run_id, f, after=_int(request, "after"), limit=limit))

    def api_task(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        detail = read(q.task_detail, run_id, request.path_params["task_id"])
        if detail is None:
            return _json({"error": f"no task {request.path_params['task_id']} in run {run_id!r}"}, 404)
        return _json(detail)

    def api_workers(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        return _json({**read(q.workers, run_id), "tries": read(q.gantt, run_id)})

    def api_graph(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if read(q.run, run_id) is None:
            return _json({"error": f"no run {run_id!r}"}, 404)
        depth = _int(request, "depth", 3)
        limit = _int(request, "limit", q.GRAPH_NODES)
        assert depth is not None and limit is not None
        return _json(read(q.graph, run_id, _int(request, "task"), depth=depth, limit=limit, cache=graph_cache))

    def api_resources(request: Request) -> Response:
        points = _int(request, "points", 200)
        assert points is not None
        return _json(read(rq.run_resources, request.path_params["run_id"], points))

    def api_task_resources(request: Request) -> Response:
        return _json(read(rq.task_resources, request.path_params["run_id"], request.path_params["task_id"]))

    async def api_events(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        after = _int(request, "after")
        if after is None:
            after = await anyio.to_thread.run_sync(read, q.last_status_id, run_id)

        async def stream() -> AsyncIterator[str]:
            cursor = after
            last_sent = time.monotonic()
            yield f"event: hello\ndata: {json.dumps({'after': cursor})}\n\n"
            while not await request.is_disconnected():
                rows = await anyio.to_thread.run_sync(read, q.status_since, run_id, cursor)
                if rows:
                    cursor = rows[-1]["id"]
                    last_sent = time.monotonic()
                    yield f"event: status\nid: {cursor}\ndata: {json.dumps(rows)}\n\n"
                elif time.monotonic() - last_sent > 10:
                    last_sent = time.monotonic()
                    yield ": keep-alive\n\n"
                await asyncio.sleep(poll)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    def metrics(request: Request) -> Response:
        from flowlib.monitoring.metrics import render

        body, content_type = render(engine)
        return Response(body, media_type=content_type)

    async def bad_request(request: Request, exc: Exception) -> Response:
        return _json({"error": str(exc)}, 400)

    async def database_error(request: Request, exc: Exception) -> Response:
        return _json({"error": f"the monitoring database failed: {exc}"}, 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        engine.dispose()

    middleware = [Middleware(_TokenMiddleware, token=token)] if token else []
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/runs", api_runs),
            Route("/api/runs/{run_id}", api_run),
            Route("/api/runs/{run_id}/tasks", api_tasks),
            Route("/api/runs/{run_id}/tasks/{task_id:int}", api_task),
            Route("/api/runs/{run_id}/workers", api_workers),
            Route("/api/runs/{run_id}/graph", api_graph),
            Route("/api/runs/{run_id}/events", api_events),
            Route("/api/runs/{run_id}/resources", api_resources),
            Route("/api/runs/{run_id}/tasks/{task_id:int}/resources", api_task_resources),
            Route("/metrics", metrics),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=middleware,
        exception_handlers={_BadRequest: bad_request, sa.exc.SQLAlchemyError: database_error},
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.url = safe_url(url)
    return app
