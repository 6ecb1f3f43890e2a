"""``GET /metrics``: what the server is doing, in Prometheus' text format (the ``metrics`` extra).

Two sources, both read when Prometheus scrapes, never pushed:

- :class:`RequestMetrics`, an ASGI middleware around the whole app, counts requests by route,
  method and status and times them. The route is the *template* that matched
  (``/v1/artifacts/{artifact_id}``), never the path a client sent, and the method is one of the
  HTTP methods or ``OTHER``: no label value comes from the request, so a client naming a million
  random paths adds no series (RELIABILITY S13). A path no route serves counts as ``unmatched``.
- :class:`ServerCollector` reads the values the lower layers keep, the way the layers allow
  (values down): the admission queue and running turns (:mod:`.admission`), sessions and their
  bytes (:mod:`.sessions`), per-tool step latencies, micro-batch sizes and LLM tokens
  (:mod:`polymodal.telemetry.stats`), model loads, evictions and cache bytes
  (:func:`polymodal.tools.model_cache`).

Each app has its own registry, so two apps in one process (tests) do not share request counts;
the process-wide figures (models, steps, tokens) are the process's, as Prometheus expects of a
scrape target. With several ``--workers`` each process answers for itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount

from polymodal.serving.completions import COMPLETIONS_PATH, ASGIApp, Receive, Scope, Send
from polymodal.serving.errors import APIError
from polymodal.telemetry import stats

if TYPE_CHECKING:
    from polymodal.serving.service import Service

__all__ = ["METRICS_PATH", "RequestCounts", "RequestMetrics", "ServerCollector", "metrics_endpoint", "route_template"]

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


def route_template(routes: list[BaseRoute], scope: Scope) -> str:
    """The template of the route that serves ``scope`` (``unmatched`` when none does).

    Matched again here rather than read from the scope: the completions route is answered below
    FastAPI's router, and a route rejected for its method (405) is still that route.
    """
    path = scope.get("path", "")
    if path == COMPLETIONS_PATH:
        return COMPLETIONS_PATH
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return _template(route)
        if match is Match.PARTIAL and partial is None:
            partial = route
    return _template(partial) if partial is not None else UNMATCHED


def _template(route: BaseRoute) -> str:
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    return str(getattr(route, "path", UNMATCHED))


class RequestCounts:
    """What :class:`RequestMetrics` counted: requests by (route, method, status), durations by route."""

    def __init__(self) -> None:
        self.requests = stats.Counters(("route", "method", "status"))
        self.seconds = stats.Histograms(("route",))


class RequestMetrics:
    """Counts and times every HTTP request by route template, method and status (into ``counts``).

    ``routes`` is the app's own route list (``app.router.routes``), read at each request, so routes
    mounted after this middleware (the chat page) are matched too.
    """

    def __init__(self, app: ASGIApp, routes: list[BaseRoute], counts: RequestCounts) -> None:
        self.app = app
        self.routes = routes
        self.requests = counts.requests
        self.seconds = counts.seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # what a request that raised before answering counts as

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = route_template(self.routes, scope)
            method = scope.get("method", "")
            self.requests.add((route, method if method in _METHODS else "OTHER", str(status[0])))
            self.seconds.observe((route,), time.perf_counter() - started)


class ServerCollector:
    """A ``prometheus_client`` collector: reads the server's and the process's figures when scraped."""

    def __init__(self, service: Service, requests: RequestCounts) -> None:
        self.service = service
        self.requests = requests

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        requests = CounterMetricFamily("polymodal_http_requests", "HTTP requests by route template, method and "
                                       "status", labels=["route", "method", "status"])
        for labels, count in sorted(self.requests.requests.snapshot().items()):
            requests.add_metric(list(labels), count)
        yield requests
        yield _histogram("polymodal_http_request_duration_seconds", "Time to answer an HTTP request, by route",
                         self.requests.seconds)
        admission = self.service.admission
        yield GaugeMetricFamily("polymodal_queue_depth", "Turns admitted and waiting for a slot",
                                value=admission.waiting)
        yield GaugeMetricFamily("polymodal_turns_running", "Turns running now", value=admission.running)
        yield from self._sessions()
        yield _histogram("polymodal_tool_duration_seconds", "Plan steps by tool and how they ended",
                         stats.step_seconds)
        tokens = CounterMetricFamily("polymodal_llm_tokens", "Tokens the LLM calls reported (planner and "
                                     "fusion)", labels=["direction"])
        counted = stats.tokens.snapshot()
        for direction in ("input", "output"):
            tokens.add_metric([direction], counted.get((direction,), 0))
        yield tokens
        yield _histogram("polymodal_batch_size", "Items per micro-batched model call, by tool", stats.batch_sizes)
        yield from _models()

    def _sessions(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        store = self.service.sessions
        try:  # a store that cannot be reached drops this one gauge, not the whole scrape (its error is logged)
            count: int | None = len(store)
        except APIError:
            count = None
        if count is not None:
            yield GaugeMetricFamily("polymodal_sessions", "Sessions in the session store", value=count)
        yield GaugeMetricFamily("polymodal_session_bytes", "Bytes the sessions decoded in this process hold "
                                "(attachments, turn texts, artifacts)", value=store.total_held_bytes())


def _histogram(name: str, documentation: str, source: stats.Histograms) -> Any:
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(name, documentation, labels=list(source.labels))
    for labels, series in sorted(source.snapshot().items()):
        family.add_metric(list(labels), series.cumulative(), sum_value=series.total)
    return family


def _models() -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from polymodal.tools import model_cache  # public here, wherever the cache module lives

    cache = model_cache()
    yield CounterMetricFamily("polymodal_model_loads", "Models loaded into this process", value=cache.loads)
    yield CounterMetricFamily("polymodal_model_evictions", "Models evicted from this process",
                              value=getattr(cache, "evictions", 0))
    held = GaugeMetricFamily("polymodal_model_cache_bytes", "Bytes of loaded models, by device",
                             labels=["device"])
    devices = sorted({device for _key, device in cache.loaded()})
    for device in devices:
        held.add_metric([device], cache.used_bytes(device))
    yield held


def metrics_endpoint(service: Service, requests: RequestCounts) -> Any:
    """The ``GET /metrics`` handler: the text format, from a registry of this app's own."""
    registry: list[Any] = []

    async def metrics(_request: Request) -> Response:
        try:
            from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        except ImportError:
            msg = "GET /metrics needs prometheus-client: pip install 'polymodal[metrics]'"
            error = APIError(501, msg, type="not_implemented", code="metrics_extra_missing")
            return JSONResponse(error.body(), status_code=501)  # the server's set-up, not a failure to log
        if not registry:
            registry.append(CollectorRegistry(auto_describe=False))
            registry[0].register(ServerCollector(service, requests))
        # Collecting reads the session store (its count): on a worker thread, never blocking the event loop.
        body = await asyncio.to_thread(generate_latest, registry[0])
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics
