"""Local chat models: a real (tiny, random) transformers LM and a GGUF file, through the LLM planner.

The tiny Qwen2 writes nonsense, which is the point of the first test: the plumbing (chat
template, generation, text back, parse, re-ask, PlanningError) works end to end with a real
model. The second forces the same model's generation onto a valid plan's tokens, so the
success path runs through the same plumbing too.
"""

from __future__ import annotations

import json

import pytest

from polymodal import Attachment, ConfigurationError, MissingDependencyError, PlanningError
from polymodal.agent.conversation import ConversationView
from polymodal.agent.planner import LLMPlanner, PlanningRequest
from polymodal.llms import converted_gguf, gguf_chat_model, local_chat_model
from polymodal.tools import Captioner

pytest.importorskip("langchain_huggingface", reason="local chat models need the 'local-llm' extra")

PLAN = json.dumps({"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_1"}}], "answer": "s1"})


@pytest.fixture
def planning(media) -> tuple[PlanningRequest, dict]:
    image = Attachment.from_path(media.png()).with_id("image_1")
    request = PlanningRequest(text="What is in this photo?", conversation=ConversationView.of({"image_1": image}),
                              new_attachment_ids=["image_1"])
    return request, {"captioner": Captioner(model="/never/loaded")}


def test_tiny_local_model_garbage_ends_in_planning_error(tiny_models, planning):
    llm = local_chat_model(str(tiny_models.path("qwen2-chat")), max_new_tokens=12)
    assert llm.invoke("hello").content.strip() != "hello"  # the prompt is not echoed back
    with pytest.raises(PlanningError) as info:
        LLMPlanner(llm, max_attempts=2).plan(*planning)
    assert info.value.attempts == 2 and len(info.value.raw_outputs) == 2


def forcing(tokenizer, text: str):
    """A prefix_allowed_tokens_fn that lets generation produce exactly ``text`` (then end)."""
    target = tokenizer(text, add_special_tokens=False).input_ids
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    state = {"start": None, "last": 0}

    def allowed(_batch: int, input_ids) -> list[int]:
        length = int(input_ids.shape[-1])
        if state["start"] is None or length <= state["last"]:  # a new generate call
            state["start"] = length
        state["last"] = length
        index = length - state["start"]
        return [target[index]] if index < len(target) else [end]

    return allowed


def test_tiny_local_model_forced_onto_a_valid_plan_plans(tiny_models, planning):
    path = str(tiny_models.path("qwen2-chat"))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    llm = local_chat_model(path, max_new_tokens=len(PLAN) + 4, prefix_allowed_tokens_fn=forcing(tokenizer, PLAN))
    outcome = LLMPlanner(llm).plan(*planning)  # as Agent(llm=...) builds it
    assert outcome.llm_calls == 1 and outcome.tier == "llm"
    assert [s.tool for s in outcome.plan.steps] == ["captioner"] and outcome.plan.answer == "s1"


def test_missing_local_model_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="/no/such/chat-model"):
        local_chat_model("/no/such/chat-model")
    with pytest.raises(ConfigurationError, match="someone/not-cached-chat"):
        local_chat_model("someone/not-cached-chat")


def test_gguf_file_converts_once_and_chats(tiny_models, tmp_path, monkeypatch):
    pytest.importorskip("gguf", reason="GGUF chat models need the 'gguf' package (the 'local-llm' extra)")
    from support.tiny_gguf import write_tiny_gguf

    gguf = write_tiny_gguf(tiny_models.path("qwen2-chat"), tmp_path / "tiny-qwen2.gguf")
    cache = tmp_path / "cache"
    llm = gguf_chat_model(gguf, cache_dir=cache, max_new_tokens=6)
    assert isinstance(llm.invoke("hello").content, str)
    [folder] = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert (folder / "config.json").is_file() and (folder / "chat_template.jinja").is_file()

    import transformers

    def no_dequantizing(*args, **kwargs):
        raise AssertionError("the GGUF file was converted a second time")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_dequantizing)
    assert converted_gguf(gguf, cache) == folder


def test_bad_gguf_files_are_configuration_errors(tmp_path):
    pytest.importorskip("gguf", reason="GGUF chat models need the 'gguf' package (the 'local-llm' extra)")
    with pytest.raises(ConfigurationError, match="does not exist"):
        gguf_chat_model(tmp_path / "missing.gguf", cache_dir=tmp_path)
    fake = tmp_path / "notes.gguf"
    fake.write_text("not a model")
    with pytest.raises(ConfigurationError, match="notes.gguf"):
        gguf_chat_model(fake, cache_dir=tmp_path / "cache")



def test_missing_langchain_huggingface_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "langchain_huggingface"
                        else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"polymodal\[local-llm\]"):
        local_chat_model("/no/such/chat-model")
