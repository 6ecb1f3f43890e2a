"""``polymodal serve``'s API through real clients: a real uvicorn on 127.0.0.1, tiny real models.

The ``openai`` SDK and LangChain's ``ChatOpenAI`` talk to the server exactly as they talk to
OpenAI; raw ``httpx`` sends what no SDK would (malformed JSON, oversized bodies, 40 requests at
once). The captioner and the image generator are tiny random checkpoints run for real; where a
test is about the server's own behaviour (queueing, shutdown, streaming), a fixed planner and a
sleeping tool stand at the boundary.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from PIL import Image
from support.server import ServerThread

from polymodal import Agent, Plan, Settings, Step, tool
from polymodal.agent import PlanningRequest, PlanOutcome, validate_plan
from polymodal.media import MediaLimits
from polymodal.serving import SESSION_HEADER, ServeSettings, create_app
from polymodal.tools import Captioner, ImageGenerator

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

openai = pytest.importorskip("openai")
CAP = 50_000  # bytes per attachment on the test server
BODY = 200_000  # bytes per request body


def png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def noisy_png(nbytes: int) -> bytes:
    """A valid PNG of at least ``nbytes`` (random pixels do not compress)."""
    import numpy as np

    side = int((nbytes / 3) ** 0.5) + 8
    pixels = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def image_part(data: bytes) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()}}


def ask(text: str, *parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": text}, *parts]}]


class FixedPlanner:
    """The LLM boundary for tests about the server: always the same plan."""

    def __init__(self, plan: Plan) -> None:
        self.fixed = plan

    def plan(self, request: PlanningRequest, tools: Mapping[str, Any], *, config: Any = None) -> PlanOutcome:
        validate_plan(self.fixed, tools, request.attachments)
        return PlanOutcome(plan=self.fixed, tier="llm")


@tool
def nap(seconds: float = 1.0) -> str:
    """Sleep, then say so (a stand-in for a slow model call)."""
    time.sleep(seconds)
    return f"rested {seconds:g} s"


def napping_agent(seconds: float) -> Agent:
    plan = Plan(steps=[Step(id="s1", tool="nap", args={"seconds": seconds})], answer="s1")
    return Agent(tools=[nap], planner=FixedPlanner(plan))


@pytest.fixture(scope="module")
def tools(tiny_models) -> list[Any]:
    return [Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=5),
            ImageGenerator(model=str(tiny_models.path("sd-tiny")), default_steps=2)]


@pytest.fixture(scope="module")
def agent(tools) -> Agent:
    return Agent(tools=tools, settings=Settings(limits=MediaLimits(max_bytes=CAP)))


@pytest.fixture(scope="module")
def server(agent) -> Iterator[ServerThread]:
    settings = ServeSettings(ui=False, max_request_bytes=BODY, max_concurrency=2)
    with ServerThread(create_app(agent, settings)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_openai_client_gets_the_answer_agent_chat_gives(client, agent):
    photo = png()
    response = client.chat.completions.create(model="polymodal", messages=ask("describe this photo", image_part(photo)))
    direct = agent.run("describe this photo", attachments=[photo])
    answer = response.choices[0].message.content
    assert answer == direct.text and answer
    extra = response.model_extra["polymodal"]
    assert extra["attachment_ids"] == ["image_1"] and extra["planner"] == "defaults"
    (step,) = extra["steps"]
    assert step["tool"] == "captioner" and step["status"] == "ok" and step["content"] == answer
    assert extra["plan"]["steps"][0]["args"] == {"image": "image_1"}
    assert 0 < extra["timings"]["turn"] <= extra["timings"]["total"]


def test_openai_client_streams_chunks_and_polymodal_events(client):
    messages = ask("describe this photo", image_part(png((10, 200, 10))))
    whole = client.chat.completions.create(model="polymodal", messages=messages).choices[0].message.content
    chunks = list(client.chat.completions.create(model="polymodal", messages=messages, stream=True,
                                                 stream_options={"polymodal_events": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    events = [c.model_extra["polymodal_event"]["type"] for c in chunks if not c.choices]
    assert text == whole
    assert events == ["plan_ready", "step_started", "step_finished"]
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.model_extra["polymodal"]["text"] == whole
    plain = list(client.chat.completions.create(model="polymodal", messages=messages, stream=True))
    assert all(c.choices for c in plain)  # without the opt-in, a plain client sees only OpenAI chunks


def test_openai_client_sees_errors_that_name_the_problem(client):
    text_as_png = {"type": "image_url", "image_url": {"url": "data:image/png;base64," +
                                                      base64.b64encode(b"just some text").decode()}}
    with pytest.raises(openai.UnprocessableEntityError, match=r"messages\[0\]\.content\[1\].*looks like text"):
        client.chat.completions.create(model="polymodal", messages=ask("what is this?", text_as_png))
    video_url = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}}
    with pytest.raises(openai.BadRequestError, match=r"unsupported content part type 'video_url'"):
        client.chat.completions.create(model="polymodal", messages=ask("what is this?", video_url))
    with pytest.raises(openai.NotFoundError, match="use model='polymodal'"):
        client.chat.completions.create(model="gpt-4o", messages=ask("hi"))
    remote = {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data"}}
    with pytest.raises(openai.UnprocessableEntityError, match="URL attachments are off"):
        client.chat.completions.create(model="polymodal", messages=ask("what is this?", remote))


def test_langchain_chat_openai_works_against_it(server, agent):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=server.url + "/v1", api_key="unused", model="polymodal", max_retries=0)
    photo = png((30, 30, 200))
    message = HumanMessage(content=[{"type": "text", "text": "describe this photo"}, image_part(photo)])
    expected = agent.run("describe this photo", attachments=[photo]).text
    assert llm.invoke([message]).content == expected
    assert "".join(str(chunk.content) for chunk in llm.stream([message])) == expected


def test_stateless_requests_carry_their_history_in_the_messages(client):
    photo = image_part(png((120, 60, 0)))
    messages = [*ask("describe this photo", photo), {"role": "assistant", "content": "a photo"},
                {"role": "user", "content": "what is it?"}]
    extra = client.chat.completions.create(model="polymodal", messages=messages).model_extra["polymodal"]
    assert extra["attachment_ids"] == []  # nothing new this turn...
    assert extra["steps"][0]["args"] == {"image": "image_1"}  # ...but the earlier photo is image_1


def test_S12_sessions_remember_attachments_and_keep_artifacts_to_themselves(server, client):
    first, other = (httpx.post(server.url + "/v1/sessions").json()["id"] for _ in range(2))
    drawn = client.chat.completions.create(model="polymodal", messages=ask("draw a red bicycle image"),
                                           extra_body={"session_id": first}).model_extra["polymodal"]
    (artifact,) = drawn["artifacts"]
    assert artifact["id"] == "image_1" and artifact["url"].startswith("/v1/artifacts/art_")
    mine = httpx.get(server.url + artifact["url"], headers={SESSION_HEADER: first})
    assert mine.status_code == 200 and mine.headers["content-type"] == "image/png"
    assert mine.content.startswith(b"\x89PNG") and len(mine.content) == artifact["size_bytes"]
    for headers in ({SESSION_HEADER: other}, {}):  # another session, or none: as if it did not exist
        refused = httpx.get(server.url + artifact["url"], headers=headers)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "artifact_not_found"
    # the session id is a capability: only its header grants it, never a URL (URLs are logged)
    assert httpx.get(server.url + artifact["url"], params={"session": first}).status_code == 404
    # the session remembers the generated image: a follow-up question is about image_1
    follow = client.chat.completions.create(model="polymodal", messages=ask("what is it?"),
                                            extra_body={"session_id": first}).model_extra["polymodal"]
    assert follow["session_id"] == first and follow["steps"][0]["args"] == {"image": "image_1"}
    named = {SESSION_HEADER: first}
    assert httpx.get(f"{server.url}/v1/sessions/current", headers=named).json()["attachment_ids"] == ["image_1"]
    assert httpx.delete(f"{server.url}/v1/sessions/current", headers=named).status_code == 204
    assert httpx.get(server.url + artifact["url"], headers={SESSION_HEADER: first}).status_code == 404


def test_unknown_session_is_a_404_naming_it(server):
    response = httpx.post(server.url + "/v1/chat/completions", json={"model": "polymodal", "messages": ask("hi")},
                          headers={SESSION_HEADER: "sess_nope"})
    assert response.status_code == 404
    assert "unknown session 'sess_nope'" in response.json()["error"]["message"]


@pytest.mark.parametrize("factor", [2])
def test_twice_oversized_upload_and_body_are_413(server, factor):
    too_big = noisy_png(factor * CAP)
    assert factor * CAP <= len(too_big) < BODY * 3 // 4  # over the attachment cap, inside the body cap
    response = httpx.post(server.url + "/v1/chat/completions",
                          json={"model": "polymodal", "messages": ask("what?", image_part(too_big))})
    error = response.json()["error"]
    assert response.status_code == 413 and error["code"] == "attachment_too_large"
    assert f"over the {CAP:,} byte cap" in error["message"] and "max_bytes" in error["message"]
    body = b'{"model": "polymodal", "messages": [' + b" " * (factor * BODY) + b"]}"
    response = httpx.post(server.url + "/v1/chat/completions", content=body,
                          headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(("body", "status", "message"), [
    (b'{"model": "polymodal", "messages": [', 400, "not valid JSON: Expecting value at line 1 column 37"),
    (b'{"model": "polymodal"}', 400, "messages: Field required"),
    (b'{"model": "polymodal", "messages": [{"role": "assistant", "content": "hi"}]}', 400,
     "the last message must be the user's"),
    (b'{"model": "polymodal", "messages": [{"role": "user", "content": "hi"}], "n": 3}', 400, "n=3"),
], ids=["malformed-json", "no-messages", "no-user-message", "n-3"])
def test_malformed_requests_are_400_naming_the_problem(server, body, status, message):
    response = httpx.post(server.url + "/v1/chat/completions", content=body,
                          headers={"content-type": "application/json"})
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


def test_health_readiness_and_models(server):
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    deadline = time.monotonic() + 60
    while (ready := httpx.get(server.url + "/readyz")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready.json()["models"] == {"captioner": "ready", "image_generator": "ready"}
    assert httpx.get(server.url + "/v1/models").json()["data"][0]["id"] == "polymodal"


def test_readyz_reports_a_model_that_cannot_load(tmp_path):
    agent = Agent(tools=[Captioner(model=str(tmp_path / "missing-model"))])
    with ServerThread(create_app(agent, ServeSettings(ui=False))) as running:
        deadline = time.monotonic() + 30
        while httpx.get(running.url + "/readyz").json()["loading"] and time.monotonic() < deadline:
            time.sleep(0.05)
        response = httpx.get(running.url + "/readyz")
        assert response.status_code == 503 and "missing-model" in response.json()["models"]["captioner"]
        assert httpx.get(running.url + "/healthz").status_code == 200  # up, just not ready


def test_S11_api_key_is_checked_on_every_route(agent):
    with ServerThread(create_app(agent, ServeSettings(ui=False, api_key="s3cret", preload=False))) as running:
        routes = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/v1/models"), ("POST", "/v1/sessions"),
                  ("POST", "/v1/chat/completions"), ("GET", "/v1/artifacts/art_x")]
        for method, path in routes:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "s3crex"}):
                response = httpx.request(method, running.url + path, headers=headers, json={})
                assert response.status_code == 401, (method, path, headers)
                assert response.json()["error"]["type"] == "authentication_error"
        keyed = openai.OpenAI(base_url=running.url + "/v1", api_key="s3cret", max_retries=0)
        assert keyed.models.list().data[0].id == "polymodal"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=running.url + "/v1", api_key="nope", max_retries=0).models.list()


def test_S10_40_concurrent_requests_with_a_queue_of_8_get_429s_and_every_accepted_one_is_answered():
    settings = ServeSettings(ui=False, max_concurrency=2, max_queue=8, preload=False)
    with ServerThread(create_app(napping_agent(1.0), settings)) as running:

        seen_running: set[int] = set()

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=running.url, timeout=60) as http:
                body = {"model": "polymodal", "messages": ask("rest")}
                requests = asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(40)))
                while not requests.done():  # watch the server work: turns run side by side, never more than 2
                    seen_running.add((await http.get("/healthz")).json()["running"])
                    await asyncio.sleep(0.05)
                return await requests

        responses = asyncio.run(burst())
        assert max(seen_running) == 2, seen_running
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) == {200, 429}, statuses
        accepted = [r for r in responses if r.status_code == 200]
        assert len(accepted) >= 10 and len(accepted) < 40
        assert all(r.json()["choices"][0]["message"]["content"] == "rested 1 s" for r in accepted)
        for refused in (r for r in responses if r.status_code == 429):
            assert int(refused.headers["Retry-After"]) >= 1
            assert refused.json()["error"]["type"] == "rate_limit_error"
        health = httpx.get(running.url + "/healthz").json()
        assert health == {"status": "ok", "server": health["server"], "running": 0, "queued": 0, "sessions": 0}


def test_a_client_that_disconnects_mid_stream_leaves_no_slot_taken(caplog):
    caplog.set_level(logging.ERROR)
    settings = ServeSettings(ui=False, max_concurrency=1, max_queue=0, preload=False)
    with ServerThread(create_app(napping_agent(0.5), settings)) as running:
        body = {"model": "polymodal", "messages": ask("rest"), "stream": True,
                "stream_options": {"polymodal_events": True}}
        with httpx.stream("POST", running.url + "/v1/chat/completions", json=body) as response:
            first = next(response.iter_lines())
            assert first.startswith("data: ")
        # the turn goes on (its slot stays taken until the work ends: nothing runs past the limit) ...
        assert httpx.post(running.url + "/v1/chat/completions",
                          json={"model": "polymodal", "messages": ask("rest")}).status_code == 429
        deadline = time.monotonic() + 10
        while httpx.get(running.url + "/healthz").json()["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        # ... and then the slot is free again
        again = httpx.post(running.url + "/v1/chat/completions", json={"model": "polymodal", "messages": ask("rest")})
        assert again.status_code == 200 and again.json()["choices"][0]["message"]["content"] == "rested 0.5 s"
    # the turn that ended after its client left settled nothing twice (no "Exception in callback")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_graceful_shutdown_finishes_the_requests_in_flight():
    running = ServerThread(create_app(napping_agent(1.0), ServeSettings(ui=False, preload=False))).start()
    answers: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: answers.append(httpx.post(
        running.url + "/v1/chat/completions", json={"model": "polymodal", "messages": ask("rest")}, timeout=30)))
    worker.start()
    deadline = time.monotonic() + 10
    while httpx.get(running.url + "/healthz").json()["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    running.stop()  # what SIGTERM does: stop accepting, finish what is in flight
    worker.join(10)
    assert [r.status_code for r in answers] == [200]
    assert answers[0].json()["choices"][0]["message"]["content"] == "rested 1 s"


def test_streamed_answer_tokens_join_to_the_final_text_with_bad_citations_removed(tools):
    answer = "The photo shows [s1] and [s7] done."
    fusion = GenericFakeChatModel(messages=iter([AIMessage(content=answer), AIMessage(content=answer)]))
    plan = Plan(steps=[Step(id="s1", tool="captioner", args={"image": "image_1"})])
    agent = Agent(llm=fusion, tools=tools[:1], planner=FixedPlanner(plan))
    with ServerThread(create_app(agent, ServeSettings(ui=False, preload=False))) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0)
        messages = ask("describe", image_part(png()))
        chunks = list(client.chat.completions.create(model="polymodal", messages=messages, stream=True))
        pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
        whole = client.chat.completions.create(model="polymodal", messages=messages).choices[0].message.content
    assert whole == "The photo shows [s1] and done."
    assert "".join(pieces) == whole and len(pieces) > 3  # streamed in pieces, not as one block


def test_json_bodies_of_errors_are_openai_shaped(server):
    response = httpx.post(server.url + "/v1/chat/completions", content=b"nope",
                          headers={"content-type": "application/json"})
    assert set(response.json()) == {"error"} and set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert json.loads(response.content)["error"]["type"] == "invalid_request_error"


def test_the_completions_route_is_in_the_api_docs_and_takes_only_post(server):
    schema = httpx.get(server.url + "/v1/openapi.json").json()
    route = schema["paths"]["/v1/chat/completions"]
    assert list(route) == ["post"]
    assert route["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ChatCompletionRequest")
    assert {"/healthz", "/v1/models", "/v1/sessions"} <= set(schema["paths"])
    wrong = httpx.get(server.url + "/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    assert "takes POST" in wrong.json()["error"]["message"]
