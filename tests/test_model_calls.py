"""One model call's terms (polymodal.runtime.calls): a Deadline, and a ModelCall handed down to the host.

The hosts run a plain object that has only the ``HostedModel`` protocol (tests/support/hosted.py):
no ModelTool, no ``report_progress`` to call back into, so progress reaches the caller only through
the call object's own hook, and a worker process runs it like any tool.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from support.hosted import Doubler

from polymodal.errors import ToolTimeout
from polymodal.runtime.batching import MicroBatcher
from polymodal.runtime.calls import Deadline, ModelCall, current_deadline, in_context, using_deadline
from polymodal.runtime.hosts import host_named
from polymodal.tools.context import call_with_deadline


def test_a_deadline_is_one_instant_or_none():
    assert Deadline.none().remaining() is None and not Deadline.none().expired()
    assert Deadline.after(None) == Deadline.none() == Deadline.after(float("inf"))
    soon = Deadline.after(30)
    left = soon.remaining()
    assert left is not None and 29 < left <= 30 and not soon.expired()
    past = Deadline(time.monotonic() - 1)
    assert past.expired() and past.remaining() == 0.0
    assert Deadline.latest([soon, past]) == soon and Deadline.latest([soon, Deadline.none()]) == Deadline.none()
    assert Deadline.earliest([soon, past, Deadline.none()]) == past and Deadline.earliest([]) == Deadline.none()


def test_a_direct_call_with_a_timeout_sets_the_one_current_deadline():
    assert current_deadline() == Deadline.none()
    seen = call_with_deadline(current_deadline, 30.0, "probe")
    assert seen.bounded and 29 < (seen.remaining() or 0) <= 30
    with using_deadline(Deadline.after(5)) as deadline:
        assert current_deadline() is deadline
    assert current_deadline() == Deadline.none()
    with pytest.raises(ToolTimeout):
        call_with_deadline(threading.Event().wait, 0.05, "probe")


def test_progress_bound_in_context_reaches_the_callers_context_from_another_thread():
    import contextvars

    who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")
    heard: list[tuple[str, str, float | None]] = []
    who.set("the caller")
    hook = in_context(lambda message, fraction: heard.append((who.get(), message, fraction)))
    thread = threading.Thread(target=hook, args=("half", 0.5))
    thread.start()
    thread.join(5)
    assert heard == [("the caller", "half", 0.5)]


@pytest.mark.parametrize("host", ["inprocess", "process"])
def test_a_host_runs_a_hosted_model_and_replays_its_progress_to_the_call(host):
    reports: list[tuple[str, float | None]] = []
    call = ModelCall(deadline=Deadline.after(120), host=host, progress=lambda m, f: reports.append((m, f)))
    outputs = host_named(host).run(Doubler(), [1, 2], call)
    assert [value for value, _ in outputs] == [2, 4]
    pids = {pid for _, pid in outputs}
    assert (pids == {os.getpid()}) == (host == "inprocess")
    assert reports == [("item 0", 0.5), ("item 1", 1.0)]
    if host == "process":
        host_named("process").shutdown()  # type: ignore[attr-defined]


def test_a_shared_batch_runs_while_anyone_waits_and_reports_to_every_caller():
    release = threading.Event()
    seen: list[ModelCall] = []

    def run(items: list[int], call: ModelCall) -> list[int]:
        seen.append(call)
        if items == [0]:
            release.wait(5)  # busy while the next two callers queue up and share one batch
        call.report("ran", 1.0)
        return [i * 10 for i in items]

    batcher = MicroBatcher(run, max_batch=8, max_wait_ms=0, name="test")
    heard: dict[str, list[str]] = {"a": [], "b": []}
    soon, later = Deadline.after(60), Deadline.after(120)
    results: dict[str, list[int]] = {}
    first = threading.Thread(target=batcher.submit, args=([0],))
    first.start()
    while not seen:
        time.sleep(0.001)

    def submit(name: str, value: int, deadline: Deadline) -> None:
        call = ModelCall(deadline=deadline, host="inprocess", progress=lambda m, _f: heard[name].append(m))
        results[name] = batcher.submit([value], call)

    threads = [threading.Thread(target=submit, args=("a", 1, soon)),
               threading.Thread(target=submit, args=("b", 2, later))]
    for thread in threads:
        thread.start()
    while batcher.stats.requests < 3:
        time.sleep(0.001)
    release.set()
    for thread in [first, *threads]:
        thread.join(5)
    assert results == {"a": [10], "b": [20]}
    shared = seen[-1]
    assert batcher.stats.calls == 2 and shared.deadline == later and shared.host == "inprocess"
    assert heard == {"a": ["ran"], "b": ["ran"]}
