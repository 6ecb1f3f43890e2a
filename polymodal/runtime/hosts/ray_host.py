"""The Ray host: each tool configuration's model lives in a Ray actor, placed by Ray over a cluster.

One actor per tool configuration (class, model, settings), created on first use with the tool's
``ray_actor_options`` (``{"num_gpus": 0.5}``: Ray's resources are logical, so fitting models into
GPU memory stays the model cache's job inside the actor). The actor loads the model once and runs
every batch the micro-batcher sends it. Ray is reached with ``ray.init()`` — the cluster named by
``RAY_ADDRESS``, or a new local one — unless the program initialised Ray itself.

- A call past its deadline kills the actor (``ray.kill``) and raises ``ToolTimeout``; the next call
  gets a fresh actor.
- A dead actor (its process crashed, its node went away) is replaced and the call retried once;
  a second death is a ``ToolError`` naming the tool.
- Errors raised inside the actor come back as the same typed polymodal errors.
- Progress the model call reports inside the actor streams back (a Ray streaming method) and
  reaches the step as in-process.
- Traces: each call carries the step span's context, and an actor created while tracing is on gets
  this process's ``OTEL_*`` variables in its ``runtime_env`` (the tool's own ``runtime_env``
  ``env_vars`` win), so it exports its ``run`` span where this process does. Ray starts its workers
  with the node's environment, not the driver's: without this they would export nowhere.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from polymodal import telemetry
from polymodal.errors import MissingDependencyError, PolymodalError, ToolError, ToolTimeout
from polymodal.runtime.calls import Deadline, HostedModel, ModelCall

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

logger = logging.getLogger(__name__)


def import_ray(feature: str = "the ray host") -> Any:
    """``import ray``, or a MissingDependencyError naming the extra that brings it."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(feature, "ray", "ray") from exc
    return ray


def ensure_ray(address: str | None = None) -> Any:
    """Ray, initialised: already by the program, else at ``address`` / ``RAY_ADDRESS``, else a local one."""
    ray = import_ray()
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or None
        # A local instance listens on loopback only; a driver joining one on this machine must say so too.
        on_loopback = target is None or target.split("://")[-1].startswith(("127.", "localhost"))
        local = {"_node_ip_address": "127.0.0.1"} if on_loopback else {}
        ray.init(address=target, include_dashboard=False, log_to_driver=False, configure_logging=False, **local)
    return ray


class _ModelActor:
    """Holds one tool (and, once used, its model) inside a Ray worker."""

    def __init__(self, tool: HostedModel) -> None:
        self.tool = tool

    def run(self, prepared: list[Any], carrier: dict[str, str] | None = None) -> Iterator[tuple[str, Any]]:
        """A streaming method: ``("progress", (message, fraction))`` as the model call reports it, then
        ``("ok", outputs)``. The call runs on a thread of its own, since a report comes from inside it."""
        events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()

        def report(message: str, fraction: float | None = None) -> None:
            events.put(("progress", (str(message)[:500], fraction)))

        def work() -> None:
            try:
                with telemetry.continued(carrier, f"run {self.tool.name}", {
                        "polymodal.host": "ray", "polymodal.model": getattr(self.tool, "model", None),
                        "polymodal.batch.size": len(prepared)}):
                    events.put(("ok", list(self.tool.run_here(prepared, report))))
                telemetry.flush()
            except BaseException as exc:  # noqa: BLE001 - raised again in the actor's method below
                events.put(("error", exc))

        threading.Thread(target=work, name="polymodal-ray-call", daemon=True).start()
        while True:
            kind, payload = events.get()
            if kind == "error":
                raise payload
            yield kind, payload
            if kind == "ok":
                return

    def pid(self) -> int:
        return os.getpid()


class RayHost:
    """Runs model steps in Ray actors, one per tool configuration."""

    name = "ray"

    def __init__(self) -> None:
        self._actors: dict[str, Any] = {}
        self._lock = threading.Lock()

    def run(self, tool: HostedModel, prepared: list[Any], call: ModelCall) -> list[Any]:
        ray = ensure_ray()
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        for attempt in (1, 2):
            actor = self.actor_for(tool)
            stream = actor.run.options(num_returns="streaming").remote(prepared, telemetry.inject())
            started = time.monotonic()
            try:
                return self._outputs(ray, stream, call)
            except GetTimeoutError:
                self._forget(tool, actor, kill=True)
                raise ToolTimeout(tool.name, time.monotonic() - started) from None
            except RayActorError as exc:
                self._forget(tool, actor, kill=False)
                if attempt == 2:
                    msg = f"its Ray actor died twice running {tool.model or tool.name} ({exc})"
                    raise ToolError(tool.name, msg) from exc
                logger.warning("the Ray actor of %s died; retrying once on a new one", tool.name)
            except RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, PolymodalError):
                    raise cause from None
                raise ToolError(tool.name, f"{type(cause).__name__}: {cause}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _outputs(ray: Any, stream: Any, call: ModelCall) -> list[Any]:
        """Read the actor's stream up to its outputs, replaying its progress to the call's hook;
        GetTimeoutError past the call's deadline."""
        from ray.exceptions import GetTimeoutError

        deadline: Deadline = call.deadline
        while True:
            ready, _ = ray.wait([stream], timeout=deadline.remaining())
            if not ready:
                raise GetTimeoutError
            kind, payload = ray.get(next(stream))
            if kind == "ok":
                return list(payload)
            try:  # to the caller's own hook: it reaches the step as in-process
                call.report(*payload)
            except Exception:  # noqa: BLE001 - a watcher's failure must not fail the call
                logger.debug("replaying an actor's progress failed", exc_info=True)

    def actor_for(self, tool: HostedModel) -> Any:
        """The live actor of ``tool``'s configuration, created (with its resource request) on first use."""
        ray = ensure_ray()
        key = tool.batch_signature()
        with self._lock:
            actor = self._actors.get(key)
            if actor is None:
                options = _actor_options(tool)
                actor_class = ray.remote(**options)(_ModelActor)
                actor = actor_class.remote(tool.portable())
                self._actors[key] = actor
            return actor

    def _forget(self, tool: HostedModel, actor: Any, *, kill: bool) -> None:
        """Drop ``actor`` (the one this call used), never a newer one another thread has made since."""
        key = tool.batch_signature()
        with self._lock:
            if self._actors.get(key) is actor:
                del self._actors[key]
        if kill:
            ray = import_ray()
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already dead is fine
                logger.debug("ray.kill of a timed-out actor failed", exc_info=True)


def _actor_options(tool: HostedModel) -> dict[str, Any]:
    """The actor's options: the tool's ``ray_actor_options``, with the tracing exporter's variables
    (while tracing) added to its ``runtime_env`` under the tool's own ``env_vars``."""
    options: dict[str, Any] = {"max_restarts": 0, **(tool.ray_actor_options or {})}
    exporting = telemetry.exporter_environment()
    if exporting:
        runtime_env = dict(options.get("runtime_env") or {})
        runtime_env["env_vars"] = {**exporting, **(runtime_env.get("env_vars") or {})}
        options["runtime_env"] = runtime_env
    return options
