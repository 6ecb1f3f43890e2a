"""The server's core, shared by the HTTP routes and the chat page: admit, run a turn, report it.

Each turn runs on a worker thread (``max_concurrency`` of them) on the one shared agent, as
``agent.run(..., conversation=c)``: ``c`` is the session's stored conversation, or a fresh one for
a stateless request. The agent keeps nothing between turns, so concurrent requests never wait
behind one lock here; model calls that coincide are the tools layer's business (it bounds work
per device and may batch it). A session's turn is committed to the session store on the worker
thread, before the answer is handed back: what a client is told was answered, is stored.

:meth:`Service.start` returns a :class:`RunningTurn` as soon as the turn is admitted. Its
``loaded`` future settles once the attachments are decoded and validated, which lets a
streaming route still answer 413/422 with a proper status before it starts the event stream.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from polymodal.agent import Agent, Conversation, Reply, Turn
from polymodal.agent.events import AgentEvent
from polymodal.media import Attachment
from polymodal.serving.admission import Admission
from polymodal.serving.artifacts import ArtifactStore
from polymodal.serving.errors import APIError
from polymodal.serving.messages import LoadedTurn, TurnRequest, load_turn
from polymodal.serving.protocol import ArtifactLink, PolymodalExtension, Timings
from polymodal.serving.sessions import Session, Sessions
from polymodal.serving.settings import ServeSettings
from polymodal.sessions import SessionStore, open_store

__all__ = ["RunningTurn", "Service", "TurnResult"]

logger = logging.getLogger("polymodal.serving")


@dataclass
class TurnResult:
    """A finished turn and what the response reports about it."""

    reply: Reply
    session: Session | None
    artifacts: list[ArtifactLink]
    timings: Timings

    def extension(self) -> PolymodalExtension:
        """The reply as the ``polymodal`` key of a response."""
        reply = self.reply
        return PolymodalExtension(
            session_id=self.session.id if self.session else None,
            planner=reply.planner,
            fusion=reply.fusion,
            llm_calls=reply.llm_calls,
            plan=reply.plan.model_dump(mode="json"),
            steps=[step.model_dump(mode="json") for step in reply.steps],
            attachment_ids=list(reply.attachment_ids),
            artifacts=self.artifacts,
            timings=self.timings,
            text=reply.text,
        )


class RunningTurn:
    """A turn admitted and running: its events (when streamed), then its result."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.loaded: asyncio.Future[None] = loop.create_future()
        """Settles when the attachments are validated (with their error, if any); for a turn that is not
        streamed, only when the turn ends."""
        self.done: asyncio.Future[TurnResult] = loop.create_future()
        for future in (self.loaded, self.done):  # a client that left never awaits them: no "never retrieved" noise
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._events: asyncio.Queue[Any] = asyncio.Queue()

    async def events(self) -> AsyncIterator[AgentEvent]:
        """The turn's typed events as they happen (streamed turns only); ends when the turn ends."""
        while (event := await self._events.get()) is not None:
            yield event

    # -- called from the worker thread ---------------------------------------------------------

    def _emit(self, event: AgentEvent) -> None:
        self._loop.call_soon_threadsafe(self._events.put_nowait, event)

    def _loaded(self) -> None:
        def settle() -> None:
            if not self.loaded.done():
                self.loaded.set_result(None)

        self._loop.call_soon_threadsafe(settle)

    def _finish(self, result: TurnResult | None, error: BaseException | None, release: Callable[[], None]) -> None:
        """End the turn: one hop to the loop (each hop is a wake-up and a GIL hand-over) does it all."""

        def finish() -> None:
            try:
                release()
            finally:  # ``loaded`` is settled already when the attachments were fine
                futures: tuple[tuple[asyncio.Future[Any], Any], ...] = ((self.loaded, None), (self.done, result))
                for future, value in futures:  # or cancelled by a client that left
                    if not future.done():
                        if error is not None:
                            future.set_exception(error)
                        else:
                            future.set_result(value)
                self._events.put_nowait(None)

        self._loop.call_soon_threadsafe(finish)


class Service:
    """The agent behind a server: bounded admission, sessions, artifacts, readiness."""

    def __init__(self, agent: Agent, settings: ServeSettings, store: SessionStore | None = None) -> None:
        self.agent = agent
        self.settings = settings
        self.artifacts = ArtifactStore(max_bytes=settings.max_artifact_bytes, ttl=settings.session_ttl)
        """Artifacts of stateless requests (a session's live in its stored record)."""
        self.store = store if store is not None else open_store(settings.session_store)
        self.sessions = Sessions(self.store, max_sessions=settings.max_sessions, ttl=settings.session_ttl,
                                 max_bytes=settings.max_session_bytes, limits=agent.settings.limits,
                                 recent_attachments=agent.settings.recent_attachments)
        self.admission = Admission(settings.max_concurrency, settings.max_queue)
        self.pool = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="polymodal-turn")
        self.models: dict[str, str] = {}
        """Per tool with a model: "loading", "ready" or "error: ..." (what ``/readyz`` reports)."""
        self.warmed = threading.Event()
        if not settings.preload:
            self.warmed.set()

    # -- readiness -----------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load every tool's model once (run at start-up, on a thread); errors are kept, not raised."""
        try:
            for tool in self.agent.tools.values():
                load = getattr(tool, "bundle", None)
                if not callable(load):
                    continue
                self.models[tool.name] = "loading"
                try:
                    load()
                    self.models[tool.name] = "ready"
                except Exception as exc:  # reported by /readyz; the server stays up for the other tools
                    self.models[tool.name] = f"error: {exc}"
                    logger.warning("could not load the model of %s: %s", tool.name, exc)
        finally:
            self.warmed.set()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether every model loaded, and the details."""
        failed = {name: state for name, state in self.models.items() if state.startswith("error")}
        ready = self.warmed.is_set() and not failed
        return ready, {"ready": ready, "loading": not self.warmed.is_set(), "models": dict(self.models)}

    def status(self) -> dict[str, int | None]:
        """Load figures for ``/healthz`` (a store query: call it off the event loop).

        ``sessions`` is None while the store cannot be reached: the process is still up (a liveness
        probe must not restart every replica because Redis blinked); the store's error is logged.
        """
        try:
            sessions: int | None = len(self.sessions)
        except APIError:
            sessions = None
        return {"running": self.admission.running, "queued": self.admission.waiting, "sessions": sessions}

    # -- turns ---------------------------------------------------------------------------------

    async def start(self, request: TurnRequest, session: Session | None, *, stream: bool) -> RunningTurn:
        """Admit a turn (429 when the queue is full) and start it on a worker thread.

        A non-streamed turn's ``loaded`` settles with ``done``: its route just awaits ``done``.
        """
        queued_at = time.perf_counter()
        await self._admit(session)
        loop = asyncio.get_running_loop()
        running = RunningTurn(loop)
        started = time.perf_counter()
        queued = started - queued_at

        # In a copy of this task's context: the turn's spans are children of the HTTP request's (traceparent).
        self.pool.submit(contextvars.copy_context().run, self._work, request, session, stream, running, queued, started)
        return running

    async def _admit(self, session: Session | None) -> None:
        self.admission.reserve()
        if session is not None:
            self.sessions.hold(session)
        locked = entering = False
        try:
            if session is not None:
                await session.lock.acquire()
                locked = True
            entering = True
            await self.admission.enter()
        except BaseException:
            if not entering:
                self.admission.cancel()
            if locked and session is not None:
                session.lock.release()
            if session is not None:
                self.sessions.release(session)
            raise

    def _release(self, session: Session | None, seconds: float) -> None:
        self.admission.leave(seconds)
        if session is not None:
            self.sessions.release(session)
            session.lock.release()

    def _work(self, request: TurnRequest, session: Session | None, stream: bool, running: RunningTurn,
              queued: float, started: float) -> None:
        result: TurnResult | None = None
        error: BaseException | None = None
        try:
            result = self._turn(request, session, stream, running, queued)
        except BaseException as exc:  # handed to whoever awaits the turn
            error = exc
        finally:  # the slot is freed when the work ends, whether or not anybody still listens
            running._finish(result, error, lambda: self._release(session, time.perf_counter() - started))

    def _turn(self, request: TurnRequest, session: Session | None, stream: bool, running: RunningTurn,
              queued: float) -> TurnResult:
        started = time.perf_counter()
        loaded = load_turn(request, self.agent.settings.limits)
        if stream:  # a streaming route waits for this before it commits to a 200 and an event stream
            running._loaded()
        decoded = time.perf_counter() - started
        conversation = session.conversation if session is not None else self._stateless(loaded)
        emit = running._emit if stream else None
        try:
            reply = self.agent.run(loaded.text, loaded.attachments, conversation=conversation, on_event=emit,
                                   stream_answer=stream)
        except BaseException:
            if session is not None:  # nothing of a failed turn is kept: the session is its last commit again
                self.sessions.revert(session)
            raise
        links = [self._link(artifact, session) for artifact in reply.artifacts]
        if session is not None:  # with its artifacts (they count too), before the answer goes out
            self.sessions.commit(session)
        total = queued + time.perf_counter() - started
        timings = Timings(queued=queued, attachments=decoded, turn=reply.seconds, total=total)
        return TurnResult(reply=reply, session=session, artifacts=links, timings=timings)

    def _stateless(self, loaded: LoadedTurn) -> Conversation:
        """A fresh conversation holding the history the messages carry (their media get ids, in order)."""
        conversation = Conversation()
        for text, attachments, reply in loaded.earlier:
            ids = [conversation.add(a).id or "" for a in attachments]
            conversation.turns.append(Turn(user=text, reply=reply, attachment_ids=ids))
        return conversation

    def _link(self, artifact: Attachment, session: Session | None) -> ArtifactLink:
        if session is not None:  # kept in the session's record: served after a restart, by any replica
            token = f"art_{secrets.token_urlsafe(16)}"
            session.artifacts[token] = artifact
        else:
            token = self.artifacts.put(artifact, None)
        return ArtifactLink(id=artifact.id or "", url=f"/v1/artifacts/{token}", kind=artifact.kind.value,
                            mime_type=artifact.mime_type, size_bytes=artifact.size_bytes, width=artifact.width,
                            height=artifact.height, duration=artifact.duration)

    def artifact(self, token: str, session_id: str | None) -> Attachment:
        """An artifact for a caller naming ``session_id`` (or none): the session's own, or a stateless one.

        Raises:
            APIError: the same 404 whether it never existed, expired, or belongs to another session.
        """
        if session_id:
            try:
                found = self.sessions.get(session_id).artifacts.get(token)
            except APIError:
                found = None
            if found is not None:
                return found
        return self.artifacts.get(token, session_id)

    def close(self) -> None:
        """Wait for turns still running (graceful shutdown), then stop the workers and close the store."""
        self.pool.shutdown(wait=True)
        self.store.close()
