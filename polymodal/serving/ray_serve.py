"""``polymodal serve --ray``: the same app, deployed as N replicas on Ray Serve.

Each replica is an ingress deployment that builds its own agent (from a picklable recipe, as the
actors of ``polymodal batch --ray`` do) and serves :func:`~polymodal.serving.app.create_app` behind
Ray Serve's HTTP proxy. So a replica is exactly ``polymodal serve`` in a Ray actor: its own models,
its own admission queue (Ray's per-replica limit is set above it, so clients still see our 429s and
``Retry-After``), and Ray places the replicas over the cluster (``num_gpus`` per replica).

Why whole replicas rather than one deployment per model: a turn's plan runs several models with
micro-batching in front of each, all in one process; splitting models into deployments puts a
network hop (and a pickle of every image) between a step and its model and, on one machine, buys
nothing. Tools that should live elsewhere can still say ``host="ray"`` (they then run in Ray
actors of their own, shared by every replica).

Sessions are shared through the session store (``ServeSettings.session_store``): with
``redis://`` (or, on one machine, the sqlite file) every replica continues every session, whichever
one Ray's proxy picks; with ``memory://`` a session lives in the replica that created it. Stateless
clients (the whole history in every request) work on any replica. The chat page keeps its state in one
process too, so it is off under ``--ray``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polymodal.errors import ConfigurationError, MissingDependencyError
from polymodal.serving.settings import ServeSettings

if TYPE_CHECKING:
    from polymodal.agent import Agent

__all__ = ["Deployment", "RayServeOptions", "deploy"]

APP_NAME = "polymodal"


@dataclass(frozen=True)
class RayServeOptions:
    """Where and how many: ``polymodal serve --ray [ADDRESS] --replicas N``."""

    address: str | None = None
    """``auto``, ``ray://head:10001``, ...; None: ``RAY_ADDRESS``, else a new local instance."""
    replicas: int = 1
    """Copies of the app (each with its own models)."""
    replica_cpus: float = 1.0
    """Ray CPUs each replica reserves."""
    replica_gpus: float = 0.0
    """Ray GPUs each replica reserves (fractions share one GPU: fitting models in it is the cache's job)."""
    host: str = "127.0.0.1"
    """Where Ray Serve's HTTP proxy listens."""
    port: int = 8000

    def __post_init__(self) -> None:
        if self.replicas < 1:
            msg = f"--replicas must be at least 1, got {self.replicas}"
            raise ConfigurationError(msg)
        if self.replica_cpus < 0 or self.replica_gpus < 0:
            msg = "--ray-replica-cpus and --ray-replica-gpus cannot be negative"
            raise ConfigurationError(msg)


def _serve_module() -> Any:
    try:
        from ray import serve
    except ImportError as exc:
        raise MissingDependencyError("polymodal serve --ray", exc.name or "ray[serve]", "ray") from exc
    return serve


def _ingress(serve: Any) -> type:
    """The deployment class: built here so that importing this module does not import Ray."""

    @serve.ingress()
    class PolymodalReplica:
        """One replica: an agent from the recipe, served by the same app as ``polymodal serve``."""

        def __init__(self, factory: Callable[[], Agent], settings: dict[str, Any]) -> None:
            self.factory = factory
            self.settings = ServeSettings.model_validate(settings)

        def __serve_build_asgi_app__(self) -> Any:
            from polymodal.serving.app import create_app

            return create_app(self.factory, self.settings)

    return PolymodalReplica


@dataclass
class Deployment:
    """A running deployment: where it answers, and how to take it down again."""

    url: str
    started_serve: bool
    """Whether :func:`deploy` started Ray Serve (then :meth:`close` stops it; else only our app goes)."""

    def close(self) -> None:
        """Delete the polymodal app; stop Ray Serve too if this deployment started it."""
        serve = _serve_module()
        if self.started_serve:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)


def deploy(factory: Callable[[], Agent], settings: ServeSettings, options: RayServeOptions) -> Deployment:
    """Deploy ``options.replicas`` replicas serving the agent ``factory()`` builds.

    Blocks until every replica has built its app (so a model that cannot load fails here, not on the
    first request). ``factory`` must pickle: a module-level function or a ``functools.partial`` of one.
    A Ray Serve already running on the cluster keeps its own proxy (host and port): the app joins it.

    Raises:
        MissingDependencyError: Ray Serve is not installed.
        ConfigurationError: the cluster cannot be reached, or the replicas could not start.
    """
    serve = _serve_module()
    ray = _connect(options.address)
    started_serve = not _serve_running(ray)
    serve.start(http_options={"host": options.host, "port": options.port})
    # Ray's own limit above ours: a replica takes what our queue admits and answers the rest with 429.
    ongoing = settings.max_concurrency + settings.max_queue + 8
    deployment = serve.deployment(
        _ingress(serve), name="polymodal", num_replicas=options.replicas, max_ongoing_requests=ongoing,
        ray_actor_options={"num_cpus": options.replica_cpus, "num_gpus": options.replica_gpus},
    )
    # The settings travel as plain data and are validated again in the replica.
    app = deployment.bind(factory, settings.model_dump(mode="json"))
    shown = options.host if options.host != "0.0.0.0" else "127.0.0.1"
    running = Deployment(f"http://{shown}:{options.port}", started_serve)
    try:
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
    except Exception as exc:  # a replica whose agent or app could not be built
        reason = _replica_failure(serve) or f"{type(exc).__name__}: {exc}"
        running.close()
        msg = f"the Ray Serve replicas could not start: {reason}"
        raise ConfigurationError(msg) from None
    return running


def _connect(address: str | None) -> Any:
    from polymodal.runtime.hosts.ray_host import ensure_ray

    _check_reachable(address)
    try:
        return ensure_ray(address)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... for a bad address
        msg = f"--ray {address or 'local'}: cannot reach a Ray cluster: {type(exc).__name__}: {exc}"
        raise ConfigurationError(msg) from exc


def _serve_running(ray: Any) -> bool:
    try:
        ray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")
    except ValueError:  # no such actor: Serve is not running on this cluster
        return False
    return True


def _replica_failure(serve: Any) -> str | None:
    """The last line of the replicas' own traceback (the exception a user can act on), if Serve kept one."""
    application = serve.status().applications.get(APP_NAME)
    for deployment in application.deployments.values() if application else ():
        lines = [line for line in (deployment.message or "").splitlines() if line.strip()]
        if lines:
            return lines[-1].strip().removeprefix("polymodal.errors.")
    return None


def _check_reachable(address: str | None) -> None:
    """Refuse a ``host:port`` nothing listens on at once: ``ray.init`` would retry it for minutes."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port: Ray's own error says what it expected
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        msg = f"--ray {address}: cannot reach a Ray cluster: nothing answers at {host}:{port} ({exc.strerror or exc})"
        raise ConfigurationError(msg) from None
