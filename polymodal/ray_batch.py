"""Batch runs spread over a Ray cluster: jobs run in Ray actors, results come back to the driver.

Each actor builds its own agent once (from a picklable recipe: profile, config, model overrides,
device, LLM), so models load once per actor, and runs up to ``concurrency / actors`` jobs at a
time on threads, where they share batched forward passes as they do in one process. The driver
keeps at most ``concurrency`` jobs in flight and writes each result the moment it comes back —
the same appended, fsynced line as a local run — so the resume promise is unchanged: after a
crash (even SIGKILL of the driver, which takes its actors with it) a re-run does every job
without a line exactly once.

Why actors rather than Ray Data: the runner must write each job's result as soon as it finishes
(that is what makes a killed run resumable) and rerun exactly the job whose worker died. An actor
pool with ``ray.wait`` gives both directly; Ray Data's ``map_batches`` hands results back by block,
so a crash loses a whole block of finished work, and it needs the ``ray[data]`` stack.

A job whose actor dies (its process crashed, its node went away) is rerun on a new actor, up to
``max_attempts`` times in all; then it is recorded as failed. Attachments and ``--files-dir`` are
paths: on a cluster of several machines they must be on storage every node sees.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polymodal.batch import BadLine, Job, run_one
from polymodal.errors import ConfigurationError, PolymodalError

if TYPE_CHECKING:
    from polymodal.agent import Agent
from polymodal.runtime.hosts.ray_host import ensure_ray

__all__ = ["RayJobPool", "RayOptions", "WorkerSetupError"]

logger = logging.getLogger(__name__)

AgentFactory = Callable[[], "Agent"]


class WorkerSetupError(ConfigurationError):
    """The Ray workers could not build the agent (a model missing there, ``--device cuda`` on CPU nodes...).

    Raised by the driver before any job runs: every job would fail the same way.
    """


class _BatchActor:
    """Runs jobs with an agent built once in this actor."""

    def __init__(self, factory: AgentFactory) -> None:
        self.where = f"{socket.gethostname()}:{os.getpid()}"
        self.agent: Agent | None = None
        self.failure: str | None = None
        try:  # kept, not raised: an actor whose __init__ raises is only "dead" to the driver, cause unknown
            self.agent = factory()
        except Exception as exc:  # noqa: BLE001 - reported by ready(), before any job is sent
            self.failure = str(exc) if isinstance(exc, PolymodalError) else f"{type(exc).__name__}: {exc}"

    def ready(self) -> str | None:
        """Why this actor has no agent, or None when it has one."""
        return None if self.failure is None else f"{self.failure} (on {self.where})"

    def run(self, entry: Job | BadLine, base: str, files_dir: str | None) -> dict[str, Any]:
        if self.agent is None:  # a replacement actor that failed where the first ones did not
            raise WorkerSetupError(f"the Ray worker {self.where} could not build the agent: {self.failure}")
        record = run_one(self.agent, entry, Path(base), Path(files_dir) if files_dir else None)
        return {**record, "worker": self.where}

    def pid(self) -> int:
        return os.getpid()


@dataclass
class RayOptions:
    """Run a batch on Ray (``polymodal batch --ray``): where, with how many actors, building which agent.

    A pool factory for :func:`polymodal.batch.run_batch`:
    ``run_batch(None, jobs, out, pool=RayOptions(factory, actors=2))``.
    """

    agent_factory: AgentFactory
    """Builds the agent inside each actor; must pickle (a module-level function, or a partial of one)."""
    address: str | None = None
    """``auto``, ``ray://head:10001``, ...; None or "local": ``RAY_ADDRESS``, else a new local instance."""
    actors: int | None = None
    """Actors sharing the jobs (default: one per two CPUs of the cluster)."""
    actor_options: dict[str, Any] | None = None
    """Each actor's Ray resource request, e.g. ``{"num_gpus": 1}``."""

    def __call__(self, entries: list[Job | BadLine], base: Path, files_dir: Path | None, concurrency: int
                 ) -> RayJobPool:
        return RayJobPool(entries, self.agent_factory, base=base, files_dir=files_dir, concurrency=concurrency,
                          actors=self.actors, address=self.address, actor_options=self.actor_options)


class RayJobPool:
    """The Ray counterpart of :class:`polymodal.batch.JobPool`: iterate to get results as they finish.

    Args:
        entries: the jobs to run.
        factory: builds the agent inside each actor (must pickle: a module-level function or a
            ``functools.partial`` of one).
        base: the jobs file's folder (relative attachment paths are read from it).
        concurrency: the most jobs in flight over the whole cluster.
        actors: how many actors share them (default: one per two CPUs of the cluster).
        address: the cluster (``auto``, ``ray://head:10001``, ...); None: ``RAY_ADDRESS`` or local.
        actor_options: Ray resource requests of each actor, e.g. ``{"num_gpus": 1}``.
        max_attempts: runs of one job before a dying actor is recorded as its failure.
    """

    def __init__(
        self,
        entries: list[Job | BadLine],
        factory: AgentFactory,
        *,
        base: Path,
        files_dir: Path | None = None,
        concurrency: int = 4,
        actors: int | None = None,
        address: str | None = None,
        actor_options: dict[str, Any] | None = None,
        max_attempts: int = 3,
    ) -> None:
        self._ray = ensure_ray(None if address in (None, "", "local") else address)
        self._todo = list(reversed(entries))
        self._factory = factory
        self._base, self._files_dir = str(base), (str(files_dir) if files_dir else None)
        self._concurrency = max(1, concurrency)
        count = actors or max(1, int(self._ray.cluster_resources().get("CPU", 2)) // 2)
        count = max(1, min(count, self._concurrency, len(entries) or 1))
        per_actor = -(-self._concurrency // count)
        self._actor_class = self._ray.remote(max_concurrency=per_actor, max_restarts=0,
                                             **(actor_options or {}))(_BatchActor)
        self.actors: list[Any] = [self._new_actor() for _ in range(count)]
        self._check_actors()
        self._in_flight: dict[Any, tuple[Job | BadLine, int, int, Any]] = {}  # ref -> (entry, attempt, slot, actor)
        self._max_attempts = max(1, max_attempts)
        self._next_slot = 0
        self._fill()

    @property
    def in_flight(self) -> int:
        """Jobs submitted whose results have not been handed out yet."""
        return len(self._in_flight)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while self._in_flight:
            record = self._next_result()
            if record is not None:
                yield record
            self._fill()

    def stop(self) -> None:
        """Submit no more jobs (the ones in flight go on)."""
        self._todo.clear()

    def drain(self) -> Iterator[dict[str, Any]]:
        """After :meth:`stop`: the results of the jobs that were in flight, as they finish."""
        while self._in_flight:
            record = self._next_result()
            if record is not None:
                yield record

    def close(self) -> None:
        """Kill the actors (their models go with them)."""
        for actor in self.actors:
            try:
                self._ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                logger.debug("ray.kill of a batch actor failed", exc_info=True)

    def _check_actors(self) -> None:
        """Wait until every actor has built its agent; raise WorkerSetupError (killing them) if one could not."""
        failures = [why for why in self._ray.get([actor.ready.remote() for actor in self.actors]) if why]
        if failures:
            self.close()
            more = f" (and {len(failures) - 1} more worker(s))" if len(failures) > 1 else ""
            raise WorkerSetupError(f"the Ray workers could not build the agent, so no job ran: {failures[0]}{more}")

    def _new_actor(self) -> Any:
        return self._actor_class.remote(self._factory)

    def _fill(self) -> None:
        while self._todo and len(self._in_flight) < self._concurrency:
            self._submit(self._todo.pop(), attempt=1)

    def _submit(self, entry: Job | BadLine, attempt: int) -> None:
        slot = self._next_slot % len(self.actors)
        self._next_slot += 1
        actor = self.actors[slot]
        ref = actor.run.remote(entry, self._base, self._files_dir)
        self._in_flight[ref] = (entry, attempt, slot, actor)

    def _next_result(self) -> dict[str, Any] | None:
        """Wait for one job; a job whose actor died is resubmitted (None is returned for it)."""
        from ray.exceptions import RayActorError

        ready, _ = self._ray.wait(list(self._in_flight), num_returns=1)
        ref = ready[0]
        entry, attempt, slot, actor = self._in_flight.pop(ref)
        try:
            return dict(self._ray.get(ref))
        except RayActorError as exc:
            if self.actors[slot] is actor:  # the first of its jobs to report the death replaces it
                self.actors[slot] = self._new_actor()
            if attempt < self._max_attempts:
                logger.warning("job %s: its Ray actor died (%s); running it again", entry.id, exc)
                self._submit(entry, attempt + 1)
                return None
            return {"id": entry.id, "ok": False, "error_type": "ResourceError",
                    "error": f"its Ray worker died {attempt} times while running it (last: {exc})"}
        except Exception as exc:  # noqa: BLE001 - a job's failure is its record, never a lost job
            return {"id": entry.id, "ok": False, "error": f"{type(exc).__name__}: {exc}", "error_type": "internal"}
