"""What a server adds so it can be watched: ``GET /metrics``, request counts, incoming trace context.

One call, :func:`observe`, made by :func:`~polymodal.serving.app.create_app` after every other
middleware, so that these two are the outermost layers: a request refused by the API key is
still counted and traced. ``/metrics`` itself sits behind the API key when one is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route

from polymodal.serving.metrics import METRICS_PATH, RequestCounts, RequestMetrics, metrics_endpoint
from polymodal.serving.trace_context import TraceContext

if TYPE_CHECKING:
    from fastapi import FastAPI

    from polymodal.serving.service import Service

__all__ = ["observe"]


def observe(app: FastAPI, service: Service) -> RequestCounts:
    """Mount ``/metrics`` and the two middlewares on ``app``; returns the request counts they share."""
    counts = RequestCounts()
    # First in the route list: the chat page is mounted at "/" and would otherwise answer /metrics with a 404.
    app.router.routes.insert(0, Route(METRICS_PATH, metrics_endpoint(service, counts), methods=["GET"],
                                      include_in_schema=False))
    app.add_middleware(RequestMetrics, routes=app.router.routes, counts=counts)
    app.add_middleware(TraceContext, routes=app.router.routes)  # added last: outermost, the span covers all
    return counts
