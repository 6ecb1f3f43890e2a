"""polymodal over MCP, driven by the official ``mcp`` client as other agents drive it.

One ``polymodal mcp`` subprocess over stdio for the module (the offline profile: the real PP-OCR
that rapidocr's wheel ships, the tiny Whisper and the tiny Stable Diffusion by a config file),
reached through :func:`polymodal.mcp_tools`, whose connection holds the official
``ClientSession``; the server side tests call that session directly. Over HTTP, the same tools
are mounted at ``/mcp`` of ``create_app(..., mcp=True)`` behind an API key, on uvicorn at
127.0.0.1. Then an Agent plans with the remote tools and fuses their results.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support.media_files import MediaFactory
from support.server import ServerThread

from polymodal import Agent, ConfigurationError, MediaLimits, Settings, ToolError, mcp_tools
from polymodal.profiles import build_agent
from polymodal.tools import MCPConnection, MCPTool

pytest.importorskip("mcp", reason="the 'mcp' extra is not installed")

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

ROOT = Path(__file__).resolve().parents[1]
SIGN = "HELLO WORLD 42"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    allowed, outside = tmp_path_factory.mktemp("allowed"), tmp_path_factory.mktemp("outside")
    return {"allowed": allowed, "outside": outside}


@pytest.fixture(scope="module")
def sign(folders: dict[str, Path]) -> Path:
    return MediaFactory(folders["allowed"]).text_image(SIGN, font_size=32)


@pytest.fixture(scope="module")
def config(tiny_models: Any, folders: dict[str, Path]) -> Path:
    path = folders["outside"] / "polymodal.toml"
    path.write_text(f'[tools.transcriber]\nmodel = "{tiny_models.path("whisper-asr")}"\nbackend = "transformers"\n'
                    f'max_new_tokens = 5\n[tools.image_generator]\nmodel = "{tiny_models.path("sd-tiny")}"\n'
                    'default_steps = 2\n')
    return path


@pytest.fixture(scope="module")
def remote(config: Path, folders: dict[str, Path]) -> Any:
    """The tools of one ``polymodal mcp`` subprocess over stdio; path arguments only from ``allowed``."""
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "POLYMODAL_ROUTER_MODEL": "none"}
    tools = mcp_tools(f"stdio:{sys.executable} -m polymodal.cli mcp --profile offline --config {config} "
                      f"--allow-dir {folders['allowed']} --max-upload-mb 1", env=env)
    yield {tool.name: tool for tool in tools}
    tools[0].connection.close()


@pytest.fixture(scope="module")
def connection(remote: dict[str, MCPTool]) -> MCPConnection:
    return remote["ocr"].connection


def call(connection: MCPConnection, name: str, arguments: dict[str, Any], **kwargs: Any) -> Any:
    """``tools/call`` through the official ClientSession."""
    return connection.run(connection.session.call_tool(name, arguments, **kwargs), 300)


def data_url(path: Path, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


# ----------------------------------------------------------------------------- server over stdio ---
def test_stdio_lists_every_tool_of_the_profile_with_its_schema_and_ask(connection):
    listed = {tool.name: tool for tool in connection.list_tools()}
    assert set(listed) == {"transcriber", "ocr", "image_generator", "ask"}
    ocr = listed["ocr"].input_schema
    assert ocr["required"] == ["image"] and ocr["additionalProperties"] is False
    assert ocr["properties"]["image"]["modality"] == "image"
    assert "local file path" in ocr["properties"]["image"]["description"]
    assert ocr["properties"]["min_score"]["maximum"] == 1.0
    assert listed["ask"].input_schema["required"] == ["prompt"]


def test_stdio_ocr_on_an_image_path_reads_the_text(connection, sign):
    result = call(connection, "ocr", {"image": str(sign)})
    assert not result.is_error, result.content
    assert result.content[0].text.strip() == SIGN
    assert result.structured_content["text"].strip() == SIGN and result.structured_content["lines"]


def test_stdio_image_generator_returns_a_png_and_reports_progress(connection):
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    result = call(connection, "image_generator", {"prompt": "a red square", "width": 32, "height": 32},
                  progress_callback=on_progress)
    assert not result.is_error, result.content
    assert "Generated an image" in result.content[0].text
    image = next(block for block in result.content if block.type == "image")
    assert image.mime_type == "image/png"
    decoded = Image.open(io.BytesIO(base64.b64decode(image.data)))
    assert decoded.format == "PNG" and decoded.size == (32, 32)
    assert len(seen) >= 2 and [p for p, _ in seen] == sorted(p for p, _ in seen)  # one per diffusion step
    assert all(message and "step" in message for _, message in seen)


def test_stdio_ask_runs_the_agent_on_an_image_with_plan_and_steps(connection, sign):
    result = call(connection, "ask", {"prompt": "What does the sign say?", "attachments": [str(sign)]})
    assert not result.is_error, result.content
    assert SIGN in result.content[0].text
    structured = result.structured_content
    assert structured["outcome"] == "answered" and SIGN in structured["answer"]
    assert [step["tool"] for step in structured["plan"]["steps"]] == ["ocr"]
    assert structured["steps"][0]["status"] == "ok"


@pytest.mark.parametrize(("name", "arguments", "expected"), [
    ("ocr", {"image": "MISSING"}, "no such file"),
    ("ocr", {"image": "bm90IGFuIGltYWdl" * 8}, "not"),  # valid base64 of text: sniffed, refused
    ("ocr", {"image": "data:image/png;base64,@@@@"}, "invalid base64"),
    ("ocr", {"image": "PLACEHOLDER", "device": "cuda"}, "device"),  # a plan may never set device
    ("ocr", {}, "image"),
    ("transcriber", {"audio": "PLACEHOLDER"}, "takes audio"),
    ("no_such_tool", {}, "no such tool"),
    ("ask", {"prompt": ""}, "prompt"),
])
def test_a_bad_call_is_a_tool_error_and_the_server_keeps_answering(connection, sign, name, arguments, expected):
    given = {"PLACEHOLDER": str(sign), "MISSING": str(sign.parent / "missing.png")}
    arguments = {key: given.get(value, value) if isinstance(value, str) else value for key, value in arguments.items()}
    result = call(connection, name, arguments)
    assert result.is_error
    assert expected in result.content[0].text, result.content[0].text
    assert call(connection, "ocr", {"image": str(sign)}).content[0].text.strip() == SIGN


def test_attacker_paths_outside_the_allowed_folders_are_refused(connection, folders, sign):
    outside = MediaFactory(folders["outside"]).png()
    link = folders["allowed"] / "link.png"
    link.symlink_to(outside)  # inside by name, outside once resolved
    for path in (outside, link, folders["allowed"] / ".." / outside.parent.name / outside.name, Path("/etc/passwd")):
        result = call(connection, "ocr", {"image": str(path)})
        assert result.is_error and "outside the allowed folders" in result.content[0].text, (path, result.content)
    # and the same through ask: every attachment goes through the same checks
    result = call(connection, "ask", {"prompt": "read it", "attachments": [str(outside)]})
    assert result.is_error and "outside the allowed folders" in result.content[0].text


def test_attacker_huge_base64_is_refused_before_decoding(connection):
    result = call(connection, "ocr", {"image": "A" * (3 * 1024**2)})  # decodes to 2.25 MB > --max-upload-mb 1
    assert result.is_error and "byte cap" in result.content[0].text


# ------------------------------------------------------------------------- server over HTTP ---
@pytest.fixture(scope="module")
def http_server(config: Path) -> Any:
    from polymodal.serving import ServeSettings, create_app

    agent = build_agent("offline", config=config, settings=Settings(limits=MediaLimits(max_bytes=1024**2)))
    app = create_app(agent, ServeSettings(ui=False, preload=False, api_key="s3cret"), mcp=True)
    with ServerThread(app) as running:
        yield running


def test_http_at_slash_mcp_behind_the_api_key(http_server, sign):
    url = http_server.url + "/mcp"
    with pytest.raises(ToolError, match="cannot connect"):
        MCPConnection(url)  # no key
    with MCPConnection(url, headers={"Authorization": "Bearer s3cret"}) as connection:
        listed = {tool.name: tool for tool in connection.list_tools()}
        assert {"ocr", "transcriber", "image_generator", "ask"} <= set(listed)
        assert "no paths over HTTP" in listed["ocr"].input_schema["properties"]["image"]["description"]
        result = call(connection, "ocr", {"image": data_url(sign)})
        assert not result.is_error and result.content[0].text.strip() == SIGN
        plain = call(connection, "ocr", {"image": base64.b64encode(sign.read_bytes()).decode()})
        assert plain.content[0].text.strip() == SIGN
        # attacker: a server path, however it is spelled, is never opened over HTTP
        for path in (str(sign), "/etc/passwd", "../../etc/passwd", "~/.ssh/id_rsa", "C:\\Windows\\win.ini"):
            refused = call(connection, "ocr", {"image": path})
            assert refused.is_error and "paths are accepted over stdio only" in refused.content[0].text, path
        refused = call(connection, "ask", {"prompt": "read it", "attachments": [str(sign)]})
        assert refused.is_error and "over stdio only" in refused.content[0].text
        huge = call(connection, "ocr", {"image": "data:image/png;base64," + "A" * (2 * 1024**2)})
        assert huge.is_error and "byte cap" in huge.content[0].text
        result = call(connection, "ask", {"prompt": "What does the sign say?", "attachments": [data_url(sign)]})
        assert not result.is_error and SIGN in result.content[0].text


def test_standalone_http_wants_the_api_key_from_the_environment(config, tmp_path):
    """``polymodal mcp --transport http`` with POLYMODAL_API_KEY: 401 without it or with a wrong one."""
    import httpx
    from support.server import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "POLYMODAL_ROUTER_MODEL": "none", "POLYMODAL_API_KEY": "s3cret"}
    log = (tmp_path / "mcp.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "polymodal.cli", "mcp", "--transport", "http", "--port",
                                str(port), "--profile", "offline", "--config", str(config)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                first = httpx.post(url, json={})
                break
            except httpx.ConnectError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "mcp.log").read_text()
                time.sleep(0.2)
        for headers in ({}, {"Authorization": "Bearer s3crex"}, {"X-API-Key": "wrong"}, {"Authorization": "s3cret"}):
            refused = httpx.post(url, json={}, headers=headers) if headers else first
            assert refused.status_code == 401, (headers, refused.text)
            assert refused.json()["error"]["type"] == "authentication_error"
        with MCPConnection(url, headers={"X-API-Key": "s3cret"}) as connection:
            assert {"ocr", "ask"} <= {tool.name for tool in connection.list_tools()}
        assert "(API key required)" in (tmp_path / "mcp.log").read_text()
    finally:
        process.terminate()
        process.wait(30)
        log.close()


# ------------------------------------------------------------------------------------ client ---
def test_an_agent_plans_with_remote_tools_and_fuses_their_results(remote, sign):
    assert remote["ocr"].input_modalities == {"image": remote["ocr"].input_modalities["image"]}
    agent = Agent(tools=list(remote.values()))
    reply = agent.chat("What does the sign say?", attachments=[sign])
    assert [step.tool for step in reply.steps] == ["ocr"] and reply.steps[0].ok
    assert SIGN in reply.text
    drawn = agent.chat("Draw an image of a red square")
    assert [step.tool for step in drawn.steps] == ["image_generator"], drawn.steps
    assert [a.kind.value for a in drawn.artifacts] == ["image"]  # the remote PNG, as an artifact of the reply
    assert drawn.artifacts[0].image().mode == "RGB" and drawn.steps[0].artifact_ids == [drawn.artifacts[0].id]


def test_the_llm_planner_reads_the_remote_schema(remote, sign):
    from support.fake_llm import ScriptedChatModel

    plan = '{"steps": [{"id": "s1", "tool": "ocr", "args": {"image": "image_1", "min_score": 0.3}}], "answer": "s1"}'
    llm = ScriptedChatModel(responses=[plan])
    reply = Agent(llm=llm, tools=list(remote.values())).chat("Read the sign", attachments=[sign])
    prompt = "\n".join(str(message.content) for message in llm.calls[0])
    assert "- ocr:" in prompt and "min_score" in prompt and "drop pieces read with lower confidence" in prompt
    assert reply.steps[0].args == {"image": "image_1", "min_score": 0.3} and SIGN in reply.text


def test_a_remote_failure_is_a_tool_error(remote, sign):
    with pytest.raises(ToolError, match="takes audio"):  # the image goes over as a data: URL; the server refuses
        remote["transcriber"].execute(audio=data_url(sign))
    plan = '{"steps": [{"id": "s1", "tool": "ocr", "args": {"image": "image_1", "min_score": 2}}]}'
    from support.fake_llm import ScriptedChatModel

    reply = Agent(llm=ScriptedChatModel(responses=[plan, plan, plan]), tools=list(remote.values())).chat(
        "Read the sign", attachments=[sign])
    assert reply.outcome == "failed" or "less than or equal to 1" in str(reply.steps)


def test_bad_targets_are_typed_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="expected 'stdio:COMMAND"):
        mcp_tools("ftp://example.org")
    with pytest.raises(ConfigurationError, match="names no command"):
        mcp_tools("stdio:  ")
    with pytest.raises(ToolError, match="cannot connect"):
        mcp_tools(f"stdio:{tmp_path / 'no-such-server'}")
