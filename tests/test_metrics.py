"""``GET /metrics`` through a real uvicorn on 127.0.0.1, read back with prometheus_client's own parser.

The tool is a real model tool (a tiny torch module, loaded through the model cache); the planner
and fusion LLM is a scripted chat model that reports ``usage_metadata`` as provider models do
(the LLM is the boundary here). The label-bound test is an attacker's: a thousand random paths,
artifact ids and methods must not become a thousand series.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.fake_llm import UsageChatModel
from support.faulty_tools import Faulty
from support.server import ServerThread

from polymodal import Agent
from polymodal.serving import create_app
from polymodal.serving.settings import ServeSettings

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

PLAN = json.dumps({"steps": [{"id": "s1", "tool": "faulty", "args": {"text": "here"}}]})
DOCS = Path(__file__).resolve().parents[1] / "docs" / "observability.md"
ASK = {"model": "polymodal", "messages": [{"role": "user", "content": "what does it say?"}]}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    agent = Agent(UsageChatModel(responses=[PLAN, "It says here [s1]."], cycle=True), tools=[Faulty()])
    with ServerThread(create_app(agent, ServeSettings(ui=False, preload=False))) as running:
        yield running


def scrape(url: str, **kwargs: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``GET /metrics`` by (name, sorted labels)."""
    response = httpx.get(url + "/metrics", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_move_after_a_turn(server):
    before = scrape(server.url)
    response = httpx.post(server.url + "/v1/chat/completions", json=ASK, timeout=120)
    assert response.status_code == 200, response.text
    after = scrape(server.url)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("polymodal_http_requests_total", route="/v1/chat/completions", method="POST", status="200") == 1
    assert moved("polymodal_http_request_duration_seconds_count", route="/v1/chat/completions") == 1
    assert moved("polymodal_tool_duration_seconds_count", tool="faulty", status="ok") == 1
    assert moved("polymodal_tool_duration_seconds_bucket", tool="faulty", status="ok", le="+Inf") == 1
    assert moved("polymodal_llm_tokens_total", direction="input") == 101 + 102  # planner + fusion
    assert moved("polymodal_llm_tokens_total", direction="output") == 14
    assert sample(after, "polymodal_model_loads_total") >= 1
    assert sample(after, "polymodal_model_cache_bytes", device="cpu") > 0  # the tiny Linear's weights
    for gauge in ("polymodal_queue_depth", "polymodal_turns_running", "polymodal_sessions",
                  "polymodal_session_bytes", "polymodal_model_evictions_total"):
        assert (gauge, ()) in after, gauge


class Batched(Faulty):
    """The faulty tool with micro-batching on: its calls go through a batcher."""

    name: str = "batched"
    micro_batching: bool | None = True
    max_wait_ms: float | None = 0.0


def test_micro_batch_sizes_are_reported_per_tool(server):
    before = scrape(server.url)
    tool = Batched()
    assert tool.execute(text="one").content.startswith("one")
    assert [out.content.split()[0] for out in tool.execute_batch([{"text": "a"}, {"text": "b"}])] == ["a", "b"]
    after = scrape(server.url)
    counted = sample(after, "polymodal_batch_size_count", tool="batched") - sample(
        before, "polymodal_batch_size_count", tool="batched")
    items = sample(after, "polymodal_batch_size_sum", tool="batched") - sample(
        before, "polymodal_batch_size_sum", tool="batched")
    assert counted >= 1 and items == 3, (counted, items)  # every item went through a batched call


def documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """The metrics table of docs/observability.md: name -> (type, label names)."""
    section = DOCS.read_text().split("## Metrics: `GET /metrics`", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`polymodal_"):
            labels = re.sub(r"\([^)]*\)", "", cells[2])  # "`direction` (`input`, `output`)": the name only
            rows[cells[0].strip("`")] = (cells[1], set(re.findall(r"`([a-z_]+)`", labels)))
    return rows


def test_every_metric_the_docs_table_lists_is_served_with_its_type_and_labels(server):
    """docs/observability.md's table against a scrape after a turn and a micro-batched call: each
    row's name, type and labels, and no metric served that the table leaves out."""
    assert httpx.post(server.url + "/v1/chat/completions", json=ASK, timeout=120).status_code == 200
    Batched().execute_batch([{"text": "a"}, {"text": "b"}])
    response = httpx.get(server.url + "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    documented = documented_metrics()
    assert len(documented) >= 12, documented  # the table was found and read
    for name, (kind, labels) in documented.items():
        family = families.get(name.removesuffix("_total") if kind == "counter" else name)
        assert family is not None, f"{name}: in the docs, not served"
        assert family.type == kind, (name, family.type)
        assert family.samples, f"{name}: no sample after a turn"
        assert {key for s in family.samples for key in s.labels} - {"le"} == labels, name
    served = {f.name for f in families.values() if f.name.startswith("polymodal_")}
    named = {name.removesuffix("_total") if kind == "counter" else name for name, (kind, _) in documented.items()}
    assert served == named, f"served, not in the docs: {sorted(served - named)}"


def test_usage_in_completions_is_the_llms_reported_tokens_summed_over_planner_and_fusion(server):
    body = httpx.post(server.url + "/v1/chat/completions", json=ASK, timeout=120).json()
    assert body["usage"] == {"prompt_tokens": 101 + 102, "completion_tokens": 14, "total_tokens": 217}
    chunks = []
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=120,
                      json={**ASK, "stream": True, "stream_options": {"include_usage": True}}) as streamed:
        for line in streamed.iter_lines():
            if line.startswith("data: {"):
                chunks.append(json.loads(line.removeprefix("data: ")))
    assert chunks[-1]["usage"]["total_tokens"] == 217


def test_sessions_count_and_bytes_are_reported(server):
    created = httpx.post(server.url + "/v1/sessions").json()["id"]
    headers = {"X-Polymodal-Session": created}
    assert httpx.post(server.url + "/v1/chat/completions", json=ASK, headers=headers, timeout=120).status_code == 200
    held = scrape(server.url)
    assert sample(held, "polymodal_sessions") >= 1
    assert sample(held, "polymodal_session_bytes") > 0  # the turn's text at least
    httpx.delete(server.url + "/v1/sessions/current", headers=headers)


def test_S16_a_thousand_random_paths_ids_and_methods_add_no_series(server):
    """Label values are route templates and known methods, never what a client sent."""
    series = set(scrape(server.url))
    with httpx.Client(base_url=server.url) as client:
        for i in range(1000):
            token = secrets.token_hex(8)
            if i % 4 == 0:
                client.get(f"/v1/artifacts/{token}")
            elif i % 4 == 1:
                client.request(f"X{token[:6].upper()}", "/healthz")  # a made-up method
            else:
                client.get(f"/{token}/{i}?q={token}")
    grown = set(scrape(server.url)) - series
    names = {name for name, _labels in grown}
    assert len(grown) < 60, sorted(grown)  # a few new (route, method, status) series and their buckets
    assert not any(token_like in str(grown) for token_like in ("/x", "?q=")), sorted(grown)
    routes = {dict(labels).get("route") for _name, labels in grown} - {None}
    assert routes <= {"unmatched", "/v1/artifacts/{artifact_id}", "/healthz"}, routes
    methods = {dict(labels).get("method") for _name, labels in grown} - {None}
    assert methods <= {"GET", "OTHER"}, methods
    assert names <= {"polymodal_http_requests_total", "polymodal_http_request_duration_seconds_bucket",
                     "polymodal_http_request_duration_seconds_count", "polymodal_http_request_duration_seconds_sum",
                     "polymodal_http_requests_created"}, names


def test_metrics_want_the_api_key_when_one_is_set():
    agent = Agent(None, tools=[Faulty()])
    settings = ServeSettings(ui=False, preload=False, api_key="s3cret")
    with ServerThread(create_app(agent, settings)) as running:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = httpx.get(running.url + "/metrics", headers=headers)
            assert refused.status_code == 401 and "metrics" not in refused.text
        keyed = {"Authorization": "Bearer s3cret"}
        before = scrape(running.url, headers=keyed)
        body = httpx.post(running.url + "/v1/chat/completions", headers=keyed, timeout=120,
                          json={**ASK, "messages": [{"role": "user", "content": "hello"}]}).json()
        assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}  # no LLM ran
        after = scrape(running.url, headers=keyed)
    refusals = ("polymodal_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "401")))
    assert before[refusals] == 2  # the refused scrapes were counted
    assert after[("polymodal_http_requests_total", (("method", "POST"), ("route", "/v1/chat/completions"),
                                                    ("status", "200")))] == 1


def test_without_prometheus_client_metrics_is_a_501_naming_the_extra(server, monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # what `import` meets when the extra is missing
    response = httpx.get(server.url + "/metrics")
    assert response.status_code == 501 and "polymodal[metrics]" in response.json()["error"]["message"]


def test_S16_with_the_chat_page_at_slash_metrics_still_answers_and_its_paths_are_one_route():
    """The chat page is mounted at "/": every path under it counts as its one template."""
    pytest.importorskip("gradio", reason="the 'serve' extra is not installed")
    agent = Agent(None, tools=[Faulty()])
    with ServerThread(create_app(agent, ServeSettings(ui=True, preload=False))) as running:
        assert scrape(running.url)  # not the page's 404
        with httpx.Client(base_url=running.url) as client:
            for _ in range(50):
                client.get(f"/{secrets.token_hex(6)}/{secrets.token_hex(6)}")
        routes = {dict(labels)["route"] for name, labels in scrape(running.url)
                  if name == "polymodal_http_requests_total"}
    assert routes == {"/metrics", "/{path}"}, routes
