"""RELIABILITY.md "Tools and models" rows (T1-T9): faults of tools, models and the LLM behind them.

Each test is named by the row it keeps (``test_T2_...``). Fakes stand only at the boundary a test
is not about: a chat model that fails on cue (the executor, planner and fusion are under test), a
loader that runs out of memory on cue (the model cache is under test).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, PlanningError, Settings, tool
from polymodal.agent.conversation import ConversationView
from polymodal.agent.executor import StepResult
from polymodal.agent.fusion import Fusion
from polymodal.agent.plan import Plan
from polymodal.errors import ResourceError, exception_text
from polymodal.redaction import redact
from polymodal.runtime.cache import ModelCache
from polymodal.transient import RetryPolicy, backoff, call_with_retry, is_transient

EMPTY = ConversationView.of()  # a conversation with nothing in it, read-only


class Unprintable(Exception):
    """An exception whose message cannot be built: ``str()`` on it raises."""

    def __str__(self) -> str:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "a library's broken __str__")


# ---------------------------------------------------------------- T2: a tool raises


def test_T2_a_tool_exception_that_cannot_be_printed_stays_inside_its_step():
    @tool
    def fine(text: str) -> str:
        """Echo text."""
        return f"echo {text}"

    @tool
    def weird(text: str) -> str:
        """Fails with an exception that cannot be printed."""
        raise Unprintable

    plan = json.dumps({"steps": [{"id": "s1", "tool": "weird", "args": {"text": "a"}},
                                 {"id": "s2", "tool": "fine", "args": {"text": "b"}}]})
    llm = ScriptedChatModel(responses=[plan, "b was echoed [s2]; a failed."])
    reply = Agent(llm=llm, tools=[weird, fine]).chat("do both")
    assert [s.status for s in reply.steps] == ["error", "ok"]
    assert reply.steps[1].content == "echo b"  # the sibling's output is kept
    assert reply.steps[0].error_type == "Unprintable" and "could not be printed" in (reply.steps[0].error or "")
    assert 'step="s1" tool="weird" status="error"' in llm.prompt(1)
    assert reply.text == "b was echoed [s2]; a failed."


def test_T2_exception_text_names_the_class_when_str_fails():
    assert exception_text(ValueError("plain")) == "plain"
    assert exception_text(Unprintable()) == "<Unprintable whose message could not be printed (UnicodeDecodeError)>"


# ---------------------------------------------------------------- T7: secrets in error text

SECRETS = [
    ("url-userinfo", "GET https://alice:hunter2@example.com/x failed", "hunter2"),
    ("url-password-with-at", "connect postgres://app:p@ss@w0rd@db.internal:5432/x refused", "ss@w0rd"),
    ("url-token-as-user", "clone https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r failed",
     "ghp_abcdefghijklmnopqrstuvwxyz0123"),
    ("url-query-token", "GET https://api.example.com/v1?token=abc123def&x=1 returned 500", "abc123def"),
    ("api_key=", "request failed: api_key=AbC123xyz&model=m", "AbC123xyz"),
    ("api-key-header", "X-Api-Key: 9f8e7d6c5b4a rejected", "9f8e7d6c5b4a"),
    ("jwt-bare", "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U expired",
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("jwt-header", "header Authorization: Bearer eyJhbGciOi.eyJwYXlsb2Fk.sig rejected", "eyJwYXlsb2Fk"),
    ("bearer-anywhere", "the proxy forwarded Bearer 0a1b2c3d4e5f6a7b8c9d and failed", "0a1b2c3d4e5f6a7b8c9d"),
    ("basic-auth-header", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ("hf-token", "hub said 401 for hf_abcdefghijklmnopqrstuvwx", "hf_abcdefghijklmnopqrstuvwx"),
    ("sk-key", "Incorrect API key provided: sk-proj-AbCdEf0123456789xyz", "sk-proj-AbCdEf0123456789xyz"),
    ("json-api-key", '{"api_key": "s3cr3t-value"}', "s3cr3t-value"),
    ("json-password-with-spaces", '{"user": "bob", "password": "correct horse battery staple"}', "horse"),
    ("escaped-json-password", 'body was "{\\"password\\": \\"two words\\"}"', "two words"),
    ("client-secret", "client_secret='a b c' invalid", "b c"),
    ("pem-private-key", "key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
     "MIIEvQIBADANBg"),
]


@pytest.mark.parametrize(("text", "secret"), [pytest.param(t, s, id=i) for i, t, s in SECRETS])
def test_T7_secret_shapes_are_masked(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned and "***" in cleaned
    assert redact(cleaned) == cleaned  # masking twice changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "the captioner timed out after 30 s on image_1 (photo.png); tokens generated: 40, max_tokens: 512",
        "see https://host:8080/api/@scope/pkg and mailto:bob@example.com",
        "the bearer of bad news",
        "token_count: 12 and password is required",
    ],
)
def test_T7_ordinary_text_is_left_alone(text):
    assert redact(text) == text


def test_T7_url_redaction_keeps_the_host():
    assert redact("GET https://u:p@ss@db.example.com:5432/x") == "GET https://***@db.example.com:5432/x"


def test_T7_a_failing_tool_error_is_redacted_in_the_fusion_prompt_and_the_reply():
    @tool
    def fetch(query: str) -> str:
        """Look something up remotely."""
        raise RuntimeError("GET https://svc.example.com/q?api_key=TOPSECRET42 -> 403")

    plan = json.dumps({"steps": [{"id": "s1", "tool": "fetch", "args": {"query": "x"}}]})
    llm = ScriptedChatModel(responses=[plan, "It failed."])
    reply = Agent(llm=llm, tools=[fetch]).chat("look it up")
    assert "TOPSECRET42" not in (reply.steps[0].error or "") and "api_key=***" in (reply.steps[0].error or "")
    assert "TOPSECRET42" not in llm.prompt(1)


def test_T7_a_failing_llm_is_redacted_in_the_fallback_note():
    error = HTTPError(401, "bad key sk-AbCdEf0123456789xyzXYZ for Bearer abcdef0123456789")
    fusion_llm = FlakyChatModel(failures=[error])
    reply = _agent(ScriptedChatModel(responses=[ECHO_PLAN]), fusion_llm).chat("echo both")
    assert reply.fusion == "template" and "sk-AbCdEf" not in reply.text and "abcdef0123456789" not in reply.text


# ---------------------------------------------------------------- T3: out of memory


def _small(device: str, dtype: Any) -> dict:
    import torch

    return {"model": torch.nn.Linear(4, 4).to(device=device, dtype=dtype)}


class OOMOnLoad:
    """A loader that runs out of memory on its first ``times`` calls, as a too-big model would."""

    def __init__(self, times: int, error: type[BaseException] | None = None) -> None:
        import torch

        self.times, self.calls = times, 0
        self.error = error or torch.cuda.OutOfMemoryError

    def __call__(self, device: str, dtype: Any) -> dict:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error("CUDA out of memory. Tried to allocate 20.00 GiB")
        return _small(device, dtype)


def test_T3_oom_while_loading_evicts_the_device_lru_models_and_retries_once():
    cache = ModelCache()
    cache.get("a", _small, device="cpu")
    cache.get("elsewhere", _small, device="meta")
    cache.get("b", _small, device="cpu")
    loader = OOMOnLoad(times=1)
    bundle = cache.get("big", loader, device="cpu", label="big model")
    assert loader.calls == 2 and bundle is cache.get("big", loader, device="cpu")
    assert cache.loaded() == [("elsewhere", "meta"), ("big", "cpu")]  # other devices keep their models


def test_T3_oom_on_the_retry_is_a_resource_error_and_the_cache_lives_on():
    cache = ModelCache()
    cache.get("a", _small, device="cpu")
    loader = OOMOnLoad(times=2, error=MemoryError)
    with pytest.raises(ResourceError, match=r"big model: out of memory on cpu while loading the model, even after "
                                            r"evicting 1 other model\(s\) and retrying once") as info:
        cache.get("big", loader, device="cpu", label="big model")
    assert loader.calls == 2 and isinstance(info.value.__cause__, MemoryError)
    assert cache.loaded() == [] and cache.get("c", _small, device="cpu")["model"].in_features == 4


def test_T3_other_load_errors_are_not_retried():
    loader = OOMOnLoad(times=1, error=ValueError)
    with pytest.raises(ValueError, match="Tried to allocate"):
        ModelCache().get("m", loader, device="cpu")
    assert loader.calls == 1


@pytest.mark.gpu
def test_T3_real_cuda_oom_while_loading_evicts_and_retries():
    import torch

    total = torch.cuda.get_device_properties(0).total_memory
    cache = ModelCache(budget_bytes=total)
    cache.get("resident", lambda device, dtype: {"t": torch.nn.Parameter(
        torch.empty(int(total * 0.55), dtype=torch.uint8, device=device), requires_grad=False)}, device="cuda")
    calls = []

    def big(device: str, dtype: Any) -> dict:
        calls.append(device)
        weights = torch.empty(int(total * 0.6), dtype=torch.uint8, device=device)
        return {"t": torch.nn.Parameter(weights, requires_grad=False)}

    bundle = cache.get("big", big, device="cuda")
    assert len(calls) == 2 and [k for k, _ in cache.loaded()] == ["big"]
    del bundle
    cache.clear()
    assert torch.zeros(4, device="cuda").sum().item() == 0


# ---------------------------------------------------------------- T6: transient failures

NO_WAIT = RetryPolicy(attempts=3, initial_wait=0, jitter=0)


class FlakyChatModel(BaseChatModel):
    """Raises ``failures`` on its first calls, in order, then answers ``responses`` in order."""

    failures: list[Any] = Field(default_factory=list)
    responses: list[str] = Field(default_factory=list)
    calls: int = 0
    prompts: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "flaky"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.calls += 1
        self.prompts.append("\n".join(str(m.content) for m in messages))
        if self.failures:
            raise self.failures.pop(0)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.responses.pop(0)))])


class StreamBreaksChatModel(FlakyChatModel):
    """Streams ``Hel`` then fails with a reset connection (``break_after_token``), or fails first."""

    break_after_token: bool = True

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        self.calls += 1
        if self.break_after_token:
            yield ChatGenerationChunk(message=AIMessageChunk(content="Hel"))
            raise ConnectionResetError("connection reset by peer")
        if self.failures:
            raise self.failures.pop(0)
        yield ChatGenerationChunk(message=AIMessageChunk(content=self.responses.pop(0)))


class HTTPError(Exception):
    """What a client library raises for an HTTP error status."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


@tool
def echo(text: str) -> str:
    """Echo text."""
    return f"echo: {text}"


ECHO_PLAN = json.dumps({"steps": [{"id": "s1", "tool": "echo", "args": {"text": "a"}},
                                  {"id": "s2", "tool": "echo", "args": {"text": "b"}}]})


def _agent(llm: BaseChatModel, fusion_llm: BaseChatModel | None = None, policy: RetryPolicy = NO_WAIT) -> Agent:
    return Agent(llm=llm, fusion_llm=fusion_llm, tools=[echo], settings=Settings(llm_retry=policy))


def test_T6_the_planner_retries_a_reset_connection_and_a_timeout_then_plans():
    planner_llm = FlakyChatModel(failures=[ConnectionResetError("reset by peer"), TimeoutError("read timed out")],
                                 responses=[ECHO_PLAN])
    reply = _agent(planner_llm, ScriptedChatModel(responses=["a and b [s1, s2]"])).chat("echo both")
    assert planner_llm.calls == 3 and reply.llm_calls == 2
    assert reply.text == "a and b [s1, s2]"


def test_T6_a_non_transient_planner_error_fails_at_once_typed_and_redacted():
    planner_llm = FlakyChatModel(failures=[HTTPError(401, "invalid key sk-AbCdEf0123456789xyzXYZ")])
    with pytest.raises(PlanningError, match="the planner LLM call failed: HTTPError: invalid key \\*\\*\\*") as info:
        _agent(planner_llm).chat("echo both")
    assert planner_llm.calls == 1 and "retried" not in str(info.value)
    assert isinstance(info.value.__cause__, HTTPError)


def test_T6_transient_planner_failures_stop_after_the_policy_attempts():
    planner_llm = FlakyChatModel(failures=[HTTPError(503, "overloaded")] * 5)
    with pytest.raises(PlanningError, match=r"failed \(retried 2 times\): HTTPError: overloaded"):
        _agent(planner_llm).chat("echo both")
    assert planner_llm.calls == 3


def test_T6_backoff_grows_is_capped_and_never_sleeps_for_real():
    slept: list[float] = []
    calls = []

    def down() -> str:
        calls.append(1)
        raise ConnectionRefusedError("refused")

    policy = RetryPolicy(attempts=5, initial_wait=1.0, max_wait=3.0, jitter=0)
    with pytest.raises(ConnectionRefusedError):
        call_with_retry(down, policy, sleep=slept.append)
    assert len(calls) == 5 and slept == [1.0, 2.0, 3.0, 3.0]
    jittered = [backoff(RetryPolicy(initial_wait=1.0, max_wait=10.0, jitter=0.5), n) for n in (1, 2, 3)]
    assert all(base <= wait <= base + 0.5 for base, wait in zip((1, 2, 4), jittered, strict=True))


def _transient_cases() -> list[Any]:
    cases: list[Any] = [
        pytest.param(ConnectionResetError("reset"), True, id="connection-reset"),
        pytest.param(TimeoutError(), True, id="timeout"),
        pytest.param(HTTPError(429, "slow down"), True, id="429"),
        pytest.param(HTTPError(502, "bad gateway"), True, id="502"),
        pytest.param(HTTPError(529, "overloaded"), True, id="529"),
        pytest.param(HTTPError(400, "context too long"), False, id="400"),
        pytest.param(HTTPError(401, "bad key"), False, id="401"),
        pytest.param(ValueError("bug"), False, id="value-error"),
        pytest.param(AssertionError(), False, id="assertion"),
    ]
    wrapped = RuntimeError("client wrapper")
    wrapped.__cause__ = ConnectionAbortedError()
    cases.append(pytest.param(wrapped, True, id="cause-chain"))
    httpx = pytest.importorskip("httpx")
    request = httpx.Request("POST", "https://api.example.com/v1/chat")
    cases += [pytest.param(httpx.ConnectError("no route"), True, id="httpx-connect"),
              pytest.param(httpx.ReadTimeout("slow"), True, id="httpx-read-timeout"),
              pytest.param(httpx.HTTPStatusError("x", request=request, response=httpx.Response(503, request=request)),
                           True, id="httpx-503"),
              pytest.param(httpx.HTTPStatusError("x", request=request, response=httpx.Response(404, request=request)),
                           False, id="httpx-404")]
    try:
        import openai
    except ImportError:
        return cases

    def status(cls: type, code: int) -> Exception:
        return cls("x", response=httpx.Response(code, request=request), body=None)  # type: ignore[no-any-return]

    cases += [pytest.param(openai.APIConnectionError(request=request), True, id="openai-connection"),
              pytest.param(openai.APITimeoutError(request=request), True, id="openai-timeout"),
              pytest.param(status(openai.RateLimitError, 429), True, id="openai-rate-limit"),
              pytest.param(status(openai.InternalServerError, 500), True, id="openai-500"),
              pytest.param(status(openai.AuthenticationError, 401), False, id="openai-auth"),
              pytest.param(status(openai.BadRequestError, 400), False, id="openai-bad-request")]
    return cases


@pytest.mark.parametrize(("error", "transient"), _transient_cases())
def test_T6_which_errors_are_transient(error, transient):
    assert is_transient(error) is transient


def test_T6_fusion_retries_then_answers():
    fusion_llm = FlakyChatModel(failures=[HTTPError(500, "internal")], responses=["both echoed [s1, s2]"])
    reply = _agent(ScriptedChatModel(responses=[ECHO_PLAN]), fusion_llm).chat("echo both")
    assert fusion_llm.calls == 2 and reply.fusion == "llm" and reply.text == "both echoed [s1, s2]"
    assert reply.llm_calls == 3  # the plan, and both tries of the answer


@pytest.mark.parametrize("failure", [ConnectionResetError("reset"), HTTPError(400, "prompt too long")],
                         ids=["transient-every-time", "non-transient"])
def test_T6_fusion_that_still_fails_answers_with_the_tools_outputs_and_a_note(failure):
    fusion_llm = FlakyChatModel(failures=[failure] * 3)
    reply = _agent(ScriptedChatModel(responses=[ECHO_PLAN]), fusion_llm).chat("echo both")
    assert fusion_llm.calls == (3 if isinstance(failure, ConnectionError) else 1)
    assert reply.llm_calls == 1 + fusion_llm.calls  # the plan, and every try of the answer: each one cost
    assert reply.fusion == "template" and [s.status for s in reply.steps] == ["ok", "ok"]
    assert reply.text.startswith(f"The model that writes answers failed ({type(failure).__name__}: ")
    assert "echo: a" in reply.text and "echo: b" in reply.text


def test_T6_the_fallback_note_quotes_the_writers_error_redacted_and_clipped():
    results = [StepResult(id="s1", tool="echo", status="ok", content="echo: a")]
    plan = Plan.model_validate({"steps": [{"id": "s1", "tool": "echo", "args": {"text": "a"}}]})
    failure = HTTPError(400, "bad key sk-AbCdEf0123456789xyzXYZ; " + "y" * 400)
    flaky = Fusion(FlakyChatModel(failures=[failure]), retry=NO_WAIT)
    outcome = flaky.answer("echo", plan, results, conversation=EMPTY)
    reason = "HTTPError: bad key ***; " + "y" * 276 + " [... error cut here: 124 more characters not shown]"
    assert outcome.note == (f"The model that writes answers failed ({reason}), "
                            "so here are the tools' outputs as they are.")
    assert outcome.text == f"{outcome.note}\n\nEcho:\necho: a" and outcome.mode == "template"


def test_T6_a_streamed_answer_is_not_retried_once_tokens_went_out():
    results = [StepResult(id="s1", tool="echo", status="ok", content="echo: a")]
    plan = Plan.model_validate({"steps": [{"id": "s1", "tool": "echo", "args": {"text": "a"}}]})
    tokens: list[str] = []
    broken = StreamBreaksChatModel()
    outcome = Fusion(broken, retry=NO_WAIT).answer("echo", plan, results, conversation=EMPTY, on_token=tokens.append)
    assert broken.calls == 1 and tokens == ["Hel"] and outcome.mode == "template" and "echo: a" in outcome.text
    before_first_token = StreamBreaksChatModel(break_after_token=False, failures=[ConnectionResetError()],
                                               responses=["Hello [s1]"])
    outcome = Fusion(before_first_token, retry=NO_WAIT).answer("echo", plan, results, conversation=EMPTY,
                                                              on_token=tokens.append)
    assert before_first_token.calls == 2 and outcome.text == "Hello [s1]" and outcome.mode == "llm"
