"""RELIABILITY.md "Attachments" rows (A1-A10): files and text from the user are untrusted.

Each test is named by the row it keeps (``test_A2_...``). Prompt-size tests use a scripted chat
model (the LLM is the boundary, the prompts are under test) and small function tools.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.fake_llm import ScriptedChatModel
from support.media_files import write_wav

from polymodal import Agent, Attachment, tool
from polymodal.agent.planner import describe_history
from polymodal.prompts.bounds import HISTORY_CHARS, REQUEST_CHARS, TOOL_RESULT_CHARS, TOOL_RESULTS_CHARS

# ---------------------------------------------------------------- A9: huge text is bounded in every prompt


@tool
def flood(size: int) -> str:
    """Return a very long text, as an OCR of a phone book would."""
    return "".join(f"line {i:07d} of the flood\n" for i in range(size // 24 + 1))[:size]


def test_A9_a_huge_request_is_cut_with_a_note_in_the_planner_and_fusion_prompts():
    request = "Please read this. " + "x" * 200_000 + " THE END"
    plan = json.dumps({"steps": [{"id": "s1", "tool": "flood", "args": {"size": 10}}]})
    llm = ScriptedChatModel(responses=[plan, "done [s1]"])
    reply = Agent(llm=llm, tools=[flood]).chat(request)
    assert reply.text == "done [s1]"
    for call in (0, 1):  # planner, fusion
        prompt = llm.prompt(call)
        assert len(prompt) < REQUEST_CHARS + 10_000, len(prompt)
        assert "Please read this." in prompt and "THE END" not in prompt
        assert f"[... request cut here: {len(request) - REQUEST_CHARS:,} more characters not shown]" in prompt


def test_A9_huge_tool_outputs_are_cut_in_the_fusion_prompt_but_kept_in_the_reply():
    steps = [{"id": f"s{i}", "tool": "flood", "args": {"size": 1_000_000}} for i in range(1, 4)]
    llm = ScriptedChatModel(responses=[json.dumps({"steps": steps}), "three floods"])
    reply = Agent(llm=llm, tools=[flood]).chat("flood me")
    assert [len(s.content or "") for s in reply.steps] == [1_000_000] * 3  # the Reply keeps every output whole
    prompt = llm.prompt(1)
    share = min(TOOL_RESULT_CHARS, TOOL_RESULTS_CHARS // 3)
    assert len(prompt) < TOOL_RESULTS_CHARS + 10_000, len(prompt)
    assert prompt.count(f"[... tool output cut here: {1_000_000 - share:,} more characters not shown]\n"
                        "</tool_result>") == 3


def test_A9_a_long_conversation_is_bounded_oldest_turns_first():
    history = [(f"question {i} " + "q" * 2000, f"answer {i} " + "a" * 2000) for i in range(50)]
    text = describe_history(history)
    assert len(text) <= HISTORY_CHARS + 100
    assert "question 49" in text and "question 0 " not in text
    assert text.startswith("(") and "earlier turns not shown)" in text.splitlines()[0]
    assert "[... message cut here: " in text
    assert describe_history([("hi", "hello")]) == "User: hi\nAssistant: hello"


def test_A9_the_planner_reask_is_bounded():
    huge_plan = json.dumps({"steps": [{"id": f"s{i}", "tool": "shell", "args": {}} for i in range(1, 400)]})
    good = json.dumps({"steps": [{"id": "s1", "tool": "flood", "args": {"size": 5}}], "answer": "s1"})
    llm = ScriptedChatModel(responses=[huge_plan + " " * 5 + "z" * 50_000, good])
    Agent(llm=llm, tools=[flood]).chat("flood a bit")
    reask = llm.prompt(1)[len(llm.prompt(0)):]
    assert len(reask) < REQUEST_CHARS + 6_000, len(reask)
    assert "unknown tool 'shell'" in reask and "cut here" in reask


# ---------------------------------------------------------------- A7: audio is resampled and downmixed correctly


def _sine(amplitude: float, rate: int, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(("rate", "dtype"), [(8000, "int16"), (44100, "int16"), (48000, "float32")])
def test_A7_loud_stereo_is_downmixed_at_its_own_level_without_clipping(tmp_path, rate, dtype):
    loud = _sine(0.95, rate)
    stereo = Attachment.from_path(write_wav(tmp_path / "loud.wav", np.stack([loud, loud], 1), rate, dtype))
    mono = Attachment.from_path(write_wav(tmp_path / "mono.wav", loud, rate, dtype))
    down, reference = stereo.audio(16000), mono.audio(16000)
    assert np.abs(down).max() == pytest.approx(0.95, abs=0.01)  # not 1.0: nothing was clipped
    assert np.sqrt(np.mean(down**2)) == pytest.approx(np.sqrt(np.mean(reference**2)), rel=0.01)  # no gain
    np.testing.assert_allclose(down, reference, atol=1e-3)


def test_A7_different_channels_are_averaged():
    left = _sine(0.8, 16000)
    one_sided = Attachment.from_audio(np.stack([left, np.zeros_like(left)], 1), 16000).audio()
    assert np.abs(one_sided).max() == pytest.approx(0.4, abs=0.01)
    opposed = Attachment.from_audio(np.stack([left, -left], 1), 16000).audio()
    assert np.abs(opposed).max() < 1e-3
    six = Attachment.from_audio(np.stack([left] * 6, 1), 16000).audio()  # 5.1 of one signal: its own level
    assert np.abs(six).max() == pytest.approx(0.8, abs=0.01)
