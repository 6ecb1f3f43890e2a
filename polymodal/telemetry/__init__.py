"""OpenTelemetry traces, opt in: nothing of OpenTelemetry is imported, and no span is made, unless asked.

Why opt in: most runs have no collector to send spans to, and the framework's cost per request
(0.6 ms CPU) is part of what polymodal promises; a span tree of a turn costs a few times that.
Tracing is on when ``POLYMODAL_TRACING=1`` is set when polymodal is imported, or after
:func:`enable` (with a tracer provider of your own, or the SDK's, exporting over OTLP/HTTP as the
standard ``OTEL_EXPORTER_OTLP_*`` variables say). While it is off every helper here returns at
once: :func:`span` hands back one shared no-op context manager and :func:`inject` an empty dict.

This module sits at the bottom of the layers (it imports no other polymodal module), so the
agent, the tools, the hosts and the server all open their spans through it. Span names and
attributes follow the OpenTelemetry GenAI semantic conventions (see docs/observability.md).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["batch_scope", "continued", "disable", "enable", "enabled", "exporter_environment", "flush", "inject",
           "mark_error", "span", "tracer"]

TRACER_NAME = "polymodal"
_NOOP = contextlib.nullcontext(None)
_STATE: dict[str, Any] = {"on": False, "tracer": None}
_LOCK = threading.Lock()


def enabled() -> bool:
    """Whether spans are being made now."""
    return bool(_STATE["on"])


def enable(provider: Any = None) -> None:
    """Turn tracing on in this process.

    ``provider``: an OpenTelemetry ``TracerProvider`` to make the spans with (tests pass one with an
    in-memory exporter). None: the global provider when one is configured, else an SDK provider
    that batches spans to OTLP over HTTP (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME`` and
    the rest are read by the SDK itself), set as the global one.
    """
    from opentelemetry import trace

    with _LOCK:
        if provider is None:
            provider = trace.get_tracer_provider()
            if not hasattr(provider, "add_span_processor"):  # the API's proxy: nobody configured one
                provider = _otlp_provider()
                trace.set_tracer_provider(provider)
        _STATE["tracer"] = provider.get_tracer(TRACER_NAME)
        _STATE["on"] = True


def disable() -> None:
    """Stop making spans (the provider and what it exported stay as they are)."""
    _STATE["on"] = False


def tracer() -> Any:
    """The tracer spans are made with (None while tracing is off)."""
    return _STATE["tracer"] if _STATE["on"] else None


def _otlp_provider() -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "polymodal")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def span(name: str, attributes: Mapping[str, Any] | None = None, *, kind: str = "INTERNAL"
         ) -> contextlib.AbstractContextManager[Any]:
    """A span named ``name`` around a block, current inside it (yields it; None while tracing is off).

    An exception leaving the block is recorded on the span and marks it an error, as the SDK does.
    """
    if not _STATE["on"]:
        return _NOOP
    return _span(name, attributes, kind)


@contextlib.contextmanager
def _span(name: str, attributes: Mapping[str, Any] | None, kind: str, context: Any = None,
          links: Sequence[Any] = ()) -> Iterator[Any]:
    from opentelemetry import trace

    with _STATE["tracer"].start_as_current_span(
            name, context=context, kind=getattr(trace.SpanKind, kind), attributes=_clean(attributes),
            links=list(links)) as current:
        yield current


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenTelemetry takes str, bool, int, float (or sequences of one): drop None, stringify the rest."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


def inject() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``), to send along with a call."""
    if not _STATE["on"]:
        return {}
    from opentelemetry.propagate import inject as _inject

    carrier: dict[str, str] = {}
    _inject(carrier)
    return carrier


def continued(carrier: Mapping[str, str] | None, name: str, attributes: Mapping[str, Any] | None = None,
              *, kind: str = "INTERNAL", turn_on: bool = True) -> contextlib.AbstractContextManager[Any]:
    """A span continuing the trace in ``carrier`` (W3C headers from another process or an HTTP caller).

    In a process that was not tracing, a carrier with a ``traceparent`` turns tracing on first
    (:func:`enable`) when ``turn_on``: a worker process traces the calls of a traced agent. A
    server passes ``turn_on=False``: a client's header must not switch tracing on. An empty
    carrier while tracing is off costs nothing.
    """
    if not _STATE["on"]:
        if not turn_on or not carrier or "traceparent" not in carrier:
            return _NOOP
        try:
            enable()
        except Exception:  # noqa: BLE001 - no SDK or exporter here: the call runs, untraced
            logging.getLogger(__name__).warning("cannot trace here (is polymodal[otel] installed?)", exc_info=True)
            return _NOOP
    from opentelemetry.propagate import extract

    return _span(name, attributes, kind, context=extract(dict(carrier or {})))


def exporter_environment() -> dict[str, str]:
    """This process's ``OTEL_*`` variables while tracing is on (else none): what a host passes to a
    process it did not start itself (a Ray actor's worker), so that the process exports its spans
    where this one says, as a worker process that inherits the environment does."""
    if not _STATE["on"]:
        return {}
    return {name: value for name, value in os.environ.items() if name.startswith("OTEL_")}


def mark_error(current: Any, error_type: str) -> None:
    """Mark ``current`` (a span) failed with ``error_type`` (a class name, an HTTP status)."""
    from opentelemetry.trace import Status, StatusCode

    current.set_attribute("error.type", error_type)
    current.set_status(Status(StatusCode.ERROR, error_type))


def flush(timeout_millis: int = 5000) -> None:
    """Export the spans still buffered (a worker does it after each traced call)."""
    if not _STATE["on"]:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force = getattr(provider, "force_flush", None)
    if force is not None:
        force(timeout_millis)


def batch_scope(contexts: Sequence[contextvars.Context], size: int) -> contextlib.AbstractContextManager[Any]:
    """Run a coalesced model call in its first caller's trace: what it sends on (to a worker
    process, a Ray actor) continues that caller's step span; every caller's step span gets the
    batch's size as ``polymodal.batch.size``."""
    if not _STATE["on"] or not contexts:
        return _NOOP
    return _batch_scope(contexts, size)


@contextlib.contextmanager
def _batch_scope(contexts: Sequence[contextvars.Context], size: int) -> Iterator[None]:
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    for ctx in contexts:
        ctx.run(trace.get_current_span).set_attribute("polymodal.batch.size", size)
    token = otel_context.attach(contexts[0].run(otel_context.get_current))
    try:
        yield
    finally:
        otel_context.detach(token)


def _from_env() -> None:
    if os.environ.get("POLYMODAL_TRACING", "").strip().lower() in {"1", "true", "yes", "on"}:
        enable()


_from_env()
