"""DallEImageGenerator against a fake OpenAI images API on 127.0.0.1 (the remote boundary).

The fake server speaks the images API for real: it checks the request the openai client sends
(path, auth header, model, prompt, size, n, response_format) and answers with ``b64_json`` or a
``url`` it serves itself, so the request building and the response decoding are the real code.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from langchain_core.messages import ToolMessage
from PIL import Image
from pydantic import ValidationError
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, Attachment, BudgetExceeded, ConfigurationError, MissingDependencyError, ToolError
from polymodal.media import Modality
from polymodal.tools import DallEImageGenerator
from polymodal.tools.builtin.dalle import nearest_size, redact_secrets

KEY = "sk-test-0123456789abcdefSECRET"


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


class FakeImagesAPI:
    """A threaded HTTP server answering POST /v1/images/generations and GET /files/<n>.png."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.files: dict[str, bytes] = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                data = api.files.get(self.path)
                self._send(200, data, "image/png") if data else self._send(404, b"{}")

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.requests.append(body)
                api.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path != "/v1/images/generations":
                    return self._send(404, b'{"error": {"message": "no such route"}}')
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    # Like the real API, the message echoes the key it was given: it must not reach the user.
                    given = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    error = {"error": {"message": f"Incorrect API key provided: {given}.",
                                       "type": "invalid_request_error", "code": "invalid_api_key"}}
                    return self._send(401, json.dumps(error).encode())
                color = (255, 0, 0) if "red" in body["prompt"] else (0, 0, 255)
                image = png_bytes(color)
                if body.get("response_format") == "url":
                    name = f"/files/{len(api.files) + 1}.png"
                    api.files[name] = image
                    datum = {"url": f"http://127.0.0.1:{api.port}{name}"}
                else:
                    datum = {"b64_json": base64.b64encode(image).decode(), "revised_prompt": body["prompt"] + "!"}
                self._send(200, json.dumps({"created": 1, "data": [datum]}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture
def fake_api() -> Iterator[FakeImagesAPI]:
    api = FakeImagesAPI()
    thread = threading.Thread(target=api.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield api
    api.server.shutdown()
    api.server.server_close()


def dalle(api: FakeImagesAPI, **kwargs: Any) -> DallEImageGenerator:
    return DallEImageGenerator(base_url=api.base_url, api_key=KEY, max_retries=0, request_timeout=10, **kwargs)


@pytest.mark.enable_socket
def test_b64_json_request_and_decoding(fake_api):
    out = dalle(fake_api).execute(prompt="a red square", width=1800, height=1000)
    assert fake_api.requests == [{"model": "dall-e-3", "prompt": "a red square", "n": 1, "size": "1792x1024",
                                  "response_format": "b64_json"}]
    assert fake_api.headers[0]["authorization"] == f"Bearer {KEY}"
    image = out.artifact
    assert isinstance(image, Attachment) and image.kind is Modality.IMAGE and image.mime_type == "image/png"
    assert np.asarray(image.image())[0, 0].tolist() == [255, 0, 0]
    assert "a red square" in out.content and "rewrote it as: a red square!" in out.content


@pytest.mark.enable_socket
def test_url_response_is_fetched_from_the_api(fake_api):
    out = dalle(fake_api, model="dall-e-2", image_format="url").execute(prompt="a blue circle")
    assert fake_api.requests[0]["size"] == "1024x1024" and fake_api.requests[0]["model"] == "dall-e-2"
    assert fake_api.requests[0]["response_format"] == "url"
    assert np.asarray(out.artifact.image())[0, 0].tolist() == [0, 0, 255]


@pytest.mark.enable_socket
def test_api_key_never_appears_in_errors(fake_api, monkeypatch):
    wrong = "sk-wrong-key-abcdef0123456789"
    tool = DallEImageGenerator(base_url=fake_api.base_url, api_key=wrong, max_retries=0)
    with pytest.raises(ToolError, match="HTTP 401") as caught:
        tool.execute(prompt="a red square")
    assert wrong not in str(caught.value) and "***" in str(caught.value)
    assert caught.value.__cause__ is None  # the openai exception (which holds the key) is not chained
    message = tool.invoke({"type": "tool_call", "id": "c1", "name": "image_generator",
                           "args": {"prompt": "a red square"}})
    assert isinstance(message, ToolMessage) and message.status == "error" and wrong not in message.content
    monkeypatch.setenv("OPENAI_API_KEY", wrong)  # from the environment: redacted the same way
    with pytest.raises(ToolError) as from_env:
        DallEImageGenerator(base_url=fake_api.base_url, max_retries=0).execute(prompt="x")
    assert wrong not in str(from_env.value)


@pytest.mark.enable_socket
def test_key_from_the_environment(fake_api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = DallEImageGenerator(base_url=fake_api.base_url, max_retries=0).execute(prompt="a red square")
    assert out.artifact.kind is Modality.IMAGE


def test_missing_key_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        DallEImageGenerator().execute(prompt="x")


def test_missing_openai_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingDependencyError, match=r"'openai'.*polymodal\[dalle\]"):
        DallEImageGenerator(api_key=KEY).execute(prompt="x")


def test_schema_offers_only_what_dalle_honours():
    schema = DallEImageGenerator().args_schema
    assert set(schema.model_fields) == {"prompt", "width", "height"}
    with pytest.raises(ValidationError):
        schema.model_validate({"prompt": "x", "seed": 1})
    with pytest.raises(ValidationError):
        schema.model_validate({"prompt": "x", "image": "image_1"})


@pytest.mark.parametrize("width,height,expected", [(None, None, "1024x1024"), (512, 512, "1024x1024"),
                                                   (1024, 576, "1792x1024"), (600, 1000, "1024x1792")])
def test_sizes_snap_to_what_the_model_accepts(width, height, expected):
    assert nearest_size(("1024x1024", "1792x1024", "1024x1792"), width, height, "1024x1024") == expected


def test_redaction_catches_key_shapes():
    text = redact_secrets("authorization: Bearer abc.def key sk-proj-ABCDEF1234567890 and my-short-key", "my-short-key")
    assert text == "authorization: Bearer *** key *** and ***"


@pytest.mark.enable_socket
def test_budget_and_agent_plan(fake_api):
    tool = dalle(fake_api, max_images=1)
    plan = json.dumps({"steps": [{"id": "s1", "tool": "image_generator", "args": {"prompt": "a red fox"}},
                                 {"id": "s2", "tool": "image_generator", "args": {"prompt": "a blue fox"}}]})
    reply = Agent(llm=ScriptedChatModel(responses=[plan, "two foxes [s1]"]), tools=[tool]).chat("draw two foxes")
    assert sorted(s.error_type or "ok" for s in reply.steps) == ["BudgetExceeded", "ok"]  # one image per request
    assert [a.id for a in reply.artifacts] == ["image_1"]
    tool.execute(prompt="a direct call")  # outside any request: counted on the instance
    with pytest.raises(BudgetExceeded):
        tool.execute(prompt="another")
    assert len(fake_api.requests) == 2
