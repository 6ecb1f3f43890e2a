"""Where model work runs (polymodal.runtime.hosts): worker processes that a deadline can kill, crashes that
become typed errors, and the same outputs from every host.

The misbehaving tools (tests/support/faulty_tools.py) hang or crash inside ``forward`` with a real
(tiny) torch module loaded, the way a real model's native code would. Worker processes are real
subprocesses; the Ray tests run on one local Ray instance started once per test session.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np
import psutil
import pytest
from PIL import Image
from support.faulty_tools import Faulty, OtherFaulty

from polymodal import Agent, Attachment, Plan, Settings
from polymodal.agent.events import StepProgress
from polymodal.agent.planner import PlanOutcome
from polymodal.runtime.hosts import host_named
from polymodal.tools import Captioner, ClipMatcher, Transcriber


class Scripted:
    """A planner returning a fixed plan (the planner is not under test here)."""

    def __init__(self, steps: list[dict[str, Any]]) -> None:
        self.plan_ = Plan.model_validate({"steps": steps})

    def plan(self, request: Any, tools: Any, *, config: Any = None) -> PlanOutcome:
        return PlanOutcome(plan=self.plan_, tier="llm", llm_calls=0)


def _gone(pid: int, within: float = 3.0) -> bool:
    until = time.monotonic() + within
    while time.monotonic() < until:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module", autouse=True)
def _stop_workers():
    yield
    host_named("process").shutdown()  # type: ignore[attr-defined]


def test_H1_a_call_past_its_deadline_kills_its_worker_and_the_next_call_gets_a_fresh_one():
    faulty = Faulty(host="process", own_worker=True, timeout=1.0)
    first_pid = faulty.execute(text="warm up").artifact  # the worker's start-up is not what is timed
    agent = Agent(llm=None, tools=[faulty], planner=Scripted([{"id": "s1", "tool": "faulty",
                                                               "args": {"text": "sleep:60"}}]))
    started = time.monotonic()
    reply = agent.chat("hang, please")
    elapsed = time.monotonic() - started
    assert reply.steps[0].status == "timeout" and elapsed < 1.5, (reply.steps[0], elapsed)
    assert _gone(first_pid), "the stuck worker must be killed, not abandoned"
    again = faulty.execute(text="hello")
    assert again.artifact != first_pid and again.content == f"hello from {again.artifact}"


@pytest.mark.parametrize("host", ["inprocess", "process", pytest.param("ray", marks=pytest.mark.enable_socket)])
def test_progress_a_model_call_reports_reaches_the_step_wherever_the_model_runs(host, request):
    if host == "ray":
        request.getfixturevalue("ray_local")
    faulty = Faulty(host=host, own_worker=True)
    agent = Agent(llm=None, tools=[faulty], planner=Scripted([{"id": "s1", "tool": "faulty",
                                                               "args": {"text": "progress:3"}}]))
    events = list(agent.stream({"input": "work slowly"}))
    done = events[-1].reply
    worker = done.steps[0].artifact
    assert (worker != os.getpid()) == (host != "inprocess")
    progress = [(e.step_id, e.message, e.fraction) for e in events if isinstance(e, StepProgress)]
    assert progress == [("s1", f"step {n} of 3 in {worker}", pytest.approx(n / 3)) for n in (1, 2, 3)]


@pytest.mark.parametrize(("fault", "signal_name"), [("abort", "SIGABRT"), ("segv", "SIGSEGV")])
def test_H2_a_crash_in_native_code_is_a_typed_error_and_the_sibling_step_is_answered(fault, signal_name):
    tools = [Faulty(host="process"), OtherFaulty(host="process")]  # both on the CPU's shared worker
    plan = [{"id": "s1", "tool": "faulty", "args": {"text": fault}},
            {"id": "s2", "tool": "other", "args": {"text": "still here"}}]
    agent = Agent(llm=None, tools=tools, planner=Scripted(plan))
    reply = agent.chat("crash one of them")
    crashed, sibling = reply.steps
    assert crashed.status == "error" and crashed.error_type == "ToolError", crashed
    assert signal_name in (crashed.error or "") and "faulty" in (crashed.error or "")
    assert sibling.ok and (sibling.content or "").startswith("still here from ")
    follow_up = Agent(llm=None, tools=tools, planner=Scripted([plan[1]])).chat("and now?")
    assert follow_up.steps[0].ok, "the agent lives on and a new worker answers"


def test_settings_host_moves_model_work_out_of_the_agent_process():
    import os

    faulty = Faulty()
    agent = Agent(llm=None, tools=[faulty], settings=Settings(host="process"),
                  planner=Scripted([{"id": "s1", "tool": "faulty", "args": {"text": "where?"}}]))
    step = agent.chat("where do you run?").steps[0]
    assert step.ok and step.artifact != os.getpid()
    assert faulty.execute(text="here").artifact == os.getpid(), "a direct call with no setting stays in-process"


def _inputs(tiny_models, media) -> list[tuple[Any, dict[str, Any]]]:
    rng = np.random.default_rng(1)
    image = Attachment.from_image(Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)), "n.png")
    return [
        (lambda **kw: Captioner(model=str(tiny_models.path("blip-caption-varied")), max_new_tokens=6, **kw),
         {"image": image}),
        (lambda **kw: Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=6, **kw),
         {"audio": Attachment.from_path(media.wav(seconds=1.0))}),
        (lambda **kw: ClipMatcher(model=str(tiny_models.path("clip")), **kw),
         {"images": [image], "labels": ["a cat", "a dog", "a house"]}),
    ]


def _same(a: Any, b: Any) -> None:
    assert a.content == b.content
    if hasattr(a.artifact, "probabilities"):
        np.testing.assert_allclose(a.artifact.probabilities, b.artifact.probabilities, atol=1e-5)


def test_the_process_host_gives_the_same_outputs_as_in_process(tiny_models, media):
    for make, args in _inputs(tiny_models, media):
        _same(make().execute(**args), make(host="process").execute(**args))


@pytest.mark.enable_socket
def test_the_ray_host_gives_the_same_outputs_as_in_process(ray_local, tiny_models, media):
    for make, args in _inputs(tiny_models, media):
        _same(make().execute(**args), make(host="ray").execute(**args))


def _wait_until_dead(ray: Any, actor: Any, timeout: float = 30.0) -> None:
    from ray.exceptions import GetTimeoutError, RayActorError

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            ray.get(actor.pid.remote(), timeout=5)
        except RayActorError:
            return
        except GetTimeoutError:
            continue
        time.sleep(0.1)
    raise AssertionError("the killed Ray actor still answers")


@pytest.mark.enable_socket
def test_H3_a_dead_ray_actor_is_replaced_and_the_call_retried(ray_local):
    faulty = Faulty(host="ray")
    first = faulty.execute(text="one").artifact
    actor = host_named("ray").actor_for(faulty)  # type: ignore[attr-defined]
    ray_local.kill(actor)
    _wait_until_dead(ray_local, actor)  # ray.kill is asynchronous: a call sent at once may still be served
    second = faulty.execute(text="two")
    assert second.content.startswith("two from ") and second.artifact != first


def test_H4_without_ray_the_ray_host_and_batch_say_which_extra_to_install(monkeypatch, tmp_path):
    from polymodal import MissingDependencyError
    from polymodal.batch import run_batch
    from polymodal.ray_batch import RayOptions

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when the extra is not installed
    with pytest.raises(MissingDependencyError, match=r"polymodal\[ray\]"):
        Faulty(host="ray").execute(text="hi")
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "a", "prompt": "hi"}\n')
    with pytest.raises(MissingDependencyError, match=r"polymodal\[ray\]"):
        run_batch(None, jobs, tmp_path / "out.jsonl", pool=RayOptions(lambda: None))


def test_the_host_comes_from_the_config_file_and_a_wrong_one_is_named(tmp_path):
    from polymodal import ConfigurationError
    from polymodal.profiles import build_agent

    config = tmp_path / "polymodal.toml"
    config.write_text('host = "process"\n[tools.captioner]\nhost = "ray"\n')
    agent = build_agent("default", config=config)
    assert agent.settings.host == "process" and agent.tools["captioner"].host == "ray"
    config.write_text('host = "gpu-farm"\n')
    with pytest.raises(ConfigurationError, match="gpu-farm"):
        build_agent("default", config=config)
