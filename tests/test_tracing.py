"""OpenTelemetry traces of a turn (polymodal.telemetry): the span tree, across the process host's
boundary, from an HTTP caller's ``traceparent``, out through a real OTLP/HTTP exporter, and
nothing of OpenTelemetry at all while tracing is off.

The planner and fusion LLM is a scripted chat model that reports ``usage_metadata`` (the LLM is
the boundary here); the tools are real model tools (a tiny torch module) run in this process and
in a real worker process. The worker exports its spans over OTLP/HTTP, as a deployed worker
would, to a receiver this test starts on loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support.fake_llm import UsageChatModel
from support.faulty_tools import Faulty, OtherFaulty
from support.otlp import OtlpReceiver
from support.server import ServerThread

from polymodal import Agent, telemetry
from polymodal.errors import ToolError
from polymodal.runtime.hosts import host_named
from polymodal.tools import tool as as_tool

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

DOCS = Path(__file__).resolve().parents[1] / "docs" / "observability.md"
PLAN = json.dumps({"steps": [{"id": "s1", "tool": "faulty", "args": {"text": "here"}},
                             {"id": "s2", "tool": "other", "args": {"text": "there"}}]})


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set for a block, as it was after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced(receiver: OtlpReceiver) -> Iterator[tuple[InMemorySpanExporter, Any]]:
    """Tracing on in this process (in-memory spans) and in the process host's worker (OTLP/HTTP)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with environ(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url):  # what the worker's SDK exporter reads
        telemetry.enable(provider)
        agent = Agent(UsageChatModel(responses=[PLAN, "It says here [s1] and there [s2]."]),
                      tools=[Faulty(), OtherFaulty(host="process", own_worker=True)])
        reply = agent.chat("what do they say?")
        yield exporter, reply
        telemetry.disable()
        host_named("process").shutdown()  # type: ignore[attr-defined]


def test_a_two_step_turn_is_one_span_tree_with_the_genai_names_and_attributes(traced):
    exporter, reply = traced
    assert [s.status for s in reply.steps] == ["ok", "ok"], reply.steps
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert sorted(s.name for s in exporter.get_finished_spans()) == [
        "chat UsageChatModel", "chat UsageChatModel", "execute_tool faulty", "execute_tool other",
        "invoke_agent polymodal", "plan polymodal"]
    root = spans["invoke_agent polymodal"]
    assert root.parent is None and root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {root.context.trace_id}
    plan = spans["plan polymodal"]
    assert plan.parent.span_id == root.context.span_id
    assert plan.attributes["polymodal.planner.tier"] == "llm" and plan.attributes["polymodal.plan.steps"] == 2
    chats = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert [c.parent.span_id for c in chats] == [plan.context.span_id, root.context.span_id]  # planner, fusion
    assert chats[0].attributes["gen_ai.operation.name"] == "chat"
    assert chats[0].attributes["gen_ai.usage.input_tokens"] == 101
    for step_id, tool, host in (("s1", "faulty", "inprocess"), ("s2", "other", "process")):
        step = spans[f"execute_tool {tool}"]
        assert step.parent.span_id == root.context.span_id
        expected = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                    "gen_ai.tool.call.id": step_id, "polymodal.host": host}
        assert {key: step.attributes.get(key) for key in expected} == expected


def test_the_process_hosts_span_continues_the_step_span_across_the_process_boundary(traced, receiver):
    exporter, reply = traced
    step = next(s for s in exporter.get_finished_spans() if s.name == "execute_tool other")
    worker = receiver.spans()
    assert [s.name for s in worker] == ["run other"], "the worker exports its span over OTLP/HTTP"
    assert worker[0].trace_id == step.context.trace_id.to_bytes(16, "big")
    assert worker[0].parent_span_id == step.context.span_id.to_bytes(8, "big")
    attributes = {a.key: a.value for a in worker[0].attributes}
    assert attributes["polymodal.host"].string_value == "process"
    assert attributes["polymodal.batch.size"].int_value == 1
    assert reply.steps[1].artifact != os.getpid()


@pytest.mark.enable_socket  # Ray talks to its own processes on 127.0.0.1
def test_the_ray_actors_span_continues_the_step_span_on_a_real_ray(ray_local, traced):
    """A step on ``host="ray"``: the actor runs in a worker Ray started (its environment is the Ray
    node's, not this process's), and exports its ``run`` span to the endpoint this process names
    (a receiver made after Ray started), as a child of the step span, in the turn's trace."""
    exporter, _ = traced
    ray_tool = OtherFaulty(host="ray", model="faulty-linear-traced")  # its own actor, made while tracing
    agent = Agent(UsageChatModel(responses=[PLAN, "It says here [s1] and there [s2]."]), tools=[Faulty(), ray_tool])
    with OtlpReceiver() as fresh, environ(OTEL_EXPORTER_OTLP_ENDPOINT=fresh.url):
        reply = agent.chat("what do they say?")
        actor_spans = fresh.spans(within=30)
    assert [s.status for s in reply.steps] == ["ok", "ok"], reply.steps
    assert reply.steps[1].artifact != os.getpid(), "the step ran in the actor's process"
    step = next(s for s in reversed(exporter.get_finished_spans())
                if s.name == "execute_tool other" and s.attributes["polymodal.host"] == "ray")
    assert [s.name for s in actor_spans] == ["run other"], "the actor exports its span over OTLP/HTTP"
    assert actor_spans[0].trace_id == step.context.trace_id.to_bytes(16, "big")
    assert actor_spans[0].parent_span_id == step.context.span_id.to_bytes(8, "big")
    attributes = {a.key: a.value for a in actor_spans[0].attributes}
    assert attributes["polymodal.host"].string_value == "ray"
    assert attributes["polymodal.model"].string_value == "faulty-linear-traced"
    assert attributes["polymodal.batch.size"].int_value == 1


@as_tool
def broken(text: str) -> str:
    """Fails as a model tool fails: a typed error."""
    raise ToolError("broken", f"cannot read {text!r}")


def test_a_step_that_failed_has_its_span_marked_an_error_with_the_exception(traced):
    """A tool's typed error never leaves LangChain's tool call (it becomes an error message), yet
    its step span says it failed, and why."""
    exporter, _ = traced
    plan = json.dumps({"steps": [{"id": "s1", "tool": "broken", "args": {"text": "smudge"}}]})
    reply = Agent(UsageChatModel(responses=[plan, "It failed."]), tools=[broken]).chat("read it")
    assert reply.steps[0].status == "error", reply.steps
    step = next(s for s in reversed(exporter.get_finished_spans()) if s.name == "execute_tool broken")
    assert step.status.status_code.name == "ERROR" and step.attributes["error.type"] == "ToolError"
    events = [(e.name, e.attributes["exception.type"]) for e in step.events]
    assert events == [("exception", "polymodal.errors.ToolError")]
    assert "smudge" in step.events[0].attributes["exception.message"]


TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def served(traced: tuple[InMemorySpanExporter, Any]) -> InMemorySpanExporter:
    """A turn through ``polymodal serve`` with a caller's ``traceparent``, then a request without one."""
    exporter, _ = traced
    from polymodal.serving import create_app
    from polymodal.serving.settings import ServeSettings

    agent = Agent(UsageChatModel(responses=[PLAN, "It says here [s1] and there [s2]."]),
                  tools=[Faulty(), OtherFaulty()])
    with ServerThread(create_app(agent, ServeSettings(ui=False, preload=False))) as running:
        response = httpx.post(running.url + "/v1/chat/completions", timeout=120,
                              headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
                              json={"model": "polymodal", "messages": [{"role": "user", "content": "what?"}]})
        assert response.status_code == 200, response.text
        httpx.get(running.url + "/healthz")  # no traceparent: a trace of its own
    return exporter


def test_an_incoming_traceparent_continues_the_callers_trace_through_the_turn(served):
    """A caller's ``traceparent``: the server's span is its child, the turn's span the server's."""
    trace_id, parent_id = TRACE_ID, PARENT_ID
    spans = [s for s in served.get_finished_spans() if s.context.trace_id == int(trace_id, 16)]
    server = next(s for s in spans if s.name == "POST /v1/chat/completions")
    assert server.parent.span_id == int(parent_id, 16) and server.parent.is_remote
    assert server.kind.name == "SERVER"
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    turn = next(s for s in spans if s.name == "invoke_agent polymodal")
    assert turn.parent.span_id == server.context.span_id  # across the event loop -> worker thread hop
    assert {"execute_tool faulty", "execute_tool other", "plan polymodal"} <= {s.name for s in spans}
    health = next(s for s in served.get_finished_spans() if s.name == "GET /healthz")
    assert health.parent is None and health.context.trace_id != int(trace_id, 16)


def documented_spans() -> dict[str, set[str]]:
    """The span table of docs/observability.md: a name pattern (a regex) -> the attribute keys its row names."""
    section = DOCS.read_text().split("### The spans of a turn", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            name = re.escape(re.findall(r"`([^`]+)`", cells[0])[0])
            pattern = name.replace(r"\{method\}", "[A-Z]+").replace(r"\{route\}", "/[^ ]*")
            pattern = re.sub(r"\\\{[a-z]+\\\}", "[^ ]+", pattern)  # "execute_tool {tool}" -> "execute_tool [^ ]+"
            rows[pattern] = {key.split("=")[0] for key in re.findall(r"`([a-z_]+(?:\.[a-z_]+)+(?:=[^`]*)?)`", cells[2])}
    return rows


OPTIONAL = {"error.type", "gen_ai.provider.name", "polymodal.batch.size", "polymodal.model"}
"""Attributes a row names that only some spans have: a failure, a provider LangChain names, a shared
batch, a model tool's model."""


def test_every_span_the_docs_table_lists_is_made_with_its_attributes_and_no_others(served, receiver):
    """docs/observability.md's span table against the spans of the turns above (in this process,
    over HTTP, and the process host worker's over OTLP): every row is made, carrying every attribute
    it names (but the conditional ones), and no span carries an attribute its row leaves out."""
    made = [(s.name, set(s.attributes)) for s in served.get_finished_spans()]
    made += [(s.name, {a.key for a in s.attributes}) for s in receiver.spans()]
    rows = documented_spans()
    assert len(rows) >= 6, rows  # the table was found and read
    for pattern, keys in rows.items():
        matching = [attributes for name, attributes in made if re.fullmatch(pattern, name)]
        assert matching, f"{pattern}: in the docs, never made"
        for attributes in matching:
            assert keys - OPTIONAL <= attributes, (pattern, sorted(keys - OPTIONAL - attributes))
            assert attributes <= keys, (pattern, f"not in the docs: {sorted(attributes - keys)}")
    unlisted = {name for name, _ in made if not any(re.fullmatch(pattern, name) for pattern in rows)}
    assert not unlisted, f"spans the docs do not list: {sorted(unlisted)}"


def test_usage_is_the_models_own_token_counts_summed_over_planner_and_fusion(traced):
    _, reply = traced
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (101 + 102, 14)
    assert reply.to_record()["usage"] == {"input_tokens": 203, "output_tokens": 14, "total_tokens": 217}
    assert reply.to_message().usage_metadata["total_tokens"] == 217  # LangChain's field, for chains


def test_usage_is_zero_when_no_llm_ran():
    reply = Agent(None, tools=[Faulty()]).chat("hello")
    assert reply.usage.total_tokens == 0 and reply.llm_calls == 0


def test_every_environment_variable_the_page_names_is_read_by_polymodal_or_the_otel_sdk():
    """docs/observability.md's variables: each is read by polymodal or by the OpenTelemetry SDK and
    OTLP/HTTP exporter polymodal configures (they read the OTEL_* ones themselves)."""
    import opentelemetry.exporter.otlp.proto.http as exporter
    import opentelemetry.sdk as sdk

    import polymodal

    named = set(re.findall(r"`((?:OTEL|POLYMODAL)_[A-Z_]+)(?:=[^`]*)?`", DOCS.read_text()))
    assert {"POLYMODAL_TRACING", "OTEL_EXPORTER_OTLP_ENDPOINT"} <= named, named
    roots = [Path(polymodal.__file__).parent, *map(Path, sdk.__path__), *map(Path, exporter.__path__)]
    source = "\n".join(path.read_text() for root in roots for path in root.rglob("*.py"))
    assert {name for name in named if name not in source} == set()


OFF = """
import sys, pathlib
asked = []

class Refuse:  # OpenTelemetry, unreachable: an import of it by polymodal would fail the turn
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            frame = sys._getframe(1)
            while frame and "importlib" in frame.f_code.co_filename:
                frame = frame.f_back
            asked.append((name, frame.f_code.co_filename if frame else "?"))
            raise ImportError(name)

sys.meta_path.insert(0, Refuse())
from polymodal import Agent, telemetry
from polymodal.errors import ToolError
from support.faulty_tools import Faulty
reply = Agent(None, tools=[Faulty()]).chat("hi")
echoed = Faulty().execute(text="hi").content.split()[0]
ours = [name for name, where in asked if "polymodal" in pathlib.Path(where).parts]
print(reply.outcome, echoed, telemetry.tracer(), ours)
"""


def test_with_tracing_off_polymodal_imports_nothing_of_opentelemetry():
    """langsmith (langchain-core's dependency) probes for OpenTelemetry itself; polymodal never does."""
    env = {k: v for k, v in os.environ.items() if k != "POLYMODAL_TRACING"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), *sys.path])
    out = subprocess.run([sys.executable, "-c", OFF], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.stdout.strip() == "failed hi None []", out.stdout + out.stderr[-2000:]
