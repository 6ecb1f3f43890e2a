"""Incoming W3C trace context: a request that carries ``traceparent`` continues its caller's trace.

A gateway or an agent that calls polymodal over HTTP sends ``traceparent`` (and ``tracestate``);
this ASGI middleware opens the server's span as a child of the caller's, named
``{method} {route}`` as OpenTelemetry's HTTP conventions say, and the turn's ``invoke_agent``
span (opened on the worker thread the turn runs on) is its child. With tracing off it passes
every request through untouched: a client's header never turns tracing on (:mod:`polymodal.telemetry`).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

from polymodal import telemetry
from polymodal.serving.completions import ASGIApp, Receive, Scope, Send
from polymodal.serving.metrics import route_template

__all__ = ["TraceContext"]

_CARRIED = (b"traceparent", b"tracestate")


class TraceContext:
    """A ``SERVER`` span per HTTP request, continuing the caller's trace when it sent one."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not telemetry.enabled():
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or [] if k in _CARRIED}
        method = scope.get("method", "")
        with telemetry.continued(carrier, method, {"http.request.method": method, "url.path": scope.get("path"),
                                                   "url.scheme": scope.get("scheme")},
                                 kind="SERVER", turn_on=False) as span:
            status = [500]

            async def sending(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status[0] = int(message["status"])
                await send(message)

            try:
                await self.app(scope, receive, sending)
            finally:
                if span is not None:
                    route = route_template(self.routes, scope)
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        telemetry.mark_error(span, str(status[0]))
