"""RELIABILITY.md "Attachments" rows (A1-A10): files and text from the user are untrusted.

Each test is named by the row it keeps (``test_A2_...``). Prompt-size tests use a scripted chat
model (the LLM is the boundary, the prompts are under test) and small function tools.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from PIL import Image
from support.fake_llm import ScriptedChatModel
from support.media_files import write_wav
from support.offline_models import VOICE_NOTE, VOICE_NOTE_TEXT, needs_offline_models, use_test_cache, word_error_rate

from polymodal import Agent, Attachment, AttachmentError, packaged, tool
from polymodal.agent.planner import describe_history
from polymodal.media import MediaLimits
from polymodal.media._files import _open_regular
from polymodal.prompts.bounds import HISTORY_CHARS, REQUEST_CHARS, TOOL_RESULT_CHARS, TOOL_RESULTS_CHARS
from polymodal.tools import Transcriber
from polymodal.tools.builtin.transcriber import sound_seconds

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


# ---------------------------------------------------------------- A7: no speech is "(no speech)", not a hallucination


def _noise(db: float, seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """White noise at ``db`` dBFS RMS: room tone, a hiss."""
    return (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 10 ** (db / 20)).astype(np.float32)


def test_A7_near_silent_audio_is_no_speech_before_the_model_runs(tiny_models):
    transcriber = Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=5)
    near_silent = Attachment.from_audio(_noise(-65), 16000, name="room-tone.wav")
    assert np.abs(near_silent.audio()).max() > 1e-3  # not digital silence: a peak threshold lets it through
    click = np.zeros(16000 * 2, np.float32)
    click[16000:16200] = 0.9
    quiet_tone = _sine(10 ** (-40 / 20) * np.sqrt(2), 16000, seconds=2.0)  # -40 dBFS: quiet, but sound
    outputs = transcriber.execute_batch([{"audio": near_silent}, {"audio": Attachment.from_audio(click, 16000)},
                                         {"audio": Attachment.from_audio(quiet_tone, 16000)}])
    for out in outputs[:2]:
        assert out.content == "(no speech)" and out.artifact.segments == []
    assert outputs[2].artifact.segments, "the quiet tone went to the model (the tiny Whisper emits timestamps)"
    assert outputs[0].artifact.duration == pytest.approx(3.0, abs=0.01)


def test_A7_the_level_gate_measures_30ms_frames():
    assert sound_seconds(np.zeros(16000, np.float32), -55) == 0.0
    assert sound_seconds(_noise(-65, seconds=1.0), -55) == 0.0
    assert sound_seconds(_noise(-30, seconds=1.0), -55) == pytest.approx(1.02, abs=0.01)  # 34 frames of 30 ms
    assert sound_seconds(_sine(0.5, 16000, seconds=0.5), -15) == pytest.approx(0.51, abs=0.01)  # last one padded
    gated_off = Transcriber(model="/never/loaded", min_speech_db=None)
    assert [p.silent for p in gated_off.prepare([{"audio": Attachment.from_audio(_noise(-65), 16000)}])] == [False]


@needs_offline_models
@pytest.mark.slow
def test_A7_real_whisper_gives_no_speech_for_room_tone_by_the_gate_or_by_vad():
    """Whisper base says "You" for this room tone (-65 dBFS) when neither the gate nor VAD stops it."""
    use_test_cache()
    model = str(packaged.whisper_base())
    room_tone = Attachment.from_audio(_noise(-65, seconds=4.0), 16000, name="room-tone.wav")
    vad_only = Transcriber(model=model, device="cpu", cpu_threads=1, min_speech_db=None)
    assert vad_only.execute(audio=room_tone).content == "(no speech)"  # Silero VAD: sound, but no voice
    gate_only = Transcriber(model=model, device="cpu", cpu_threads=1, vad=False)
    assert gate_only.execute(audio=room_tone).content == "(no speech)"  # the level gate, before the model
    quiet_voice = Attachment.from_audio(Attachment.from_path(VOICE_NOTE).audio() * 0.01, 16000)  # 40 dB down
    default = Transcriber(model=model, device="cpu", cpu_threads=1)
    assert word_error_rate(VOICE_NOTE_TEXT, default.execute(audio=quiet_voice).content) < 0.25


# ---------------------------------------------------------------- A2: what is decoded is what was checked


@pytest.fixture
def folders(tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    return inside, outside


def _png(path, color: tuple[int, int, int], size: tuple[int, int] = (16, 16), fmt: str = "PNG"):
    Image.new("RGB", size, color).save(path, format=fmt)
    return path


def _opened_paths(monkeypatch) -> list[str]:
    opened: list[str] = []
    real = os.open

    def spy(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return opened


@pytest.mark.parametrize("roots", [True, False], ids=["roots", "no-roots"])
def test_A2_a_file_swapped_for_a_symlink_after_it_was_attached_is_not_read(folders, monkeypatch, roots):
    inside, outside = folders
    photo = _png(inside / "photo.png", (255, 0, 0))
    secret = _png(outside / "secret.png", (0, 0, 255))
    attachment = Attachment.from_path(photo, MediaLimits(allowed_roots=(inside,) if roots else None))
    photo.unlink()
    photo.symlink_to(secret)  # a second turn would now decode the secret
    opened = _opened_paths(monkeypatch)
    with pytest.raises(AttachmentError, match="outside the allowed folders" if roots else "no longer resolves"):
        attachment.image()
    assert not any("secret" in p for p in opened)


def test_A2_a_video_sound_track_is_read_from_the_checked_file(folders, media):
    inside, outside = folders
    clip = inside / "clip.mp4"
    clip.write_bytes(media.video(audio="tone").read_bytes())
    other = outside / "other.mp4"
    other.write_bytes(media.video(name="other.mp4", audio="silence").read_bytes())
    video = Attachment.from_path(clip, MediaLimits(allowed_roots=(inside,)))
    assert video.has_audio
    clip.unlink()
    clip.symlink_to(other)
    with pytest.raises(AttachmentError, match="outside the allowed folders"):
        video.audio()
    with pytest.raises(AttachmentError, match="outside the allowed folders"), video.open_av():
        pass


def test_A2_a_folder_on_the_path_swapped_for_a_symlink_is_refused(folders):
    inside, outside = folders
    (inside / "album").mkdir()
    attachment = Attachment.from_path(_png(inside / "album" / "photo.png", (255, 0, 0)))
    (inside / "album").rename(inside / "album-old")
    _png(outside / "photo.png", (0, 0, 255))
    (inside / "album").symlink_to(outside)
    with pytest.raises(AttachmentError, match="no longer resolves to the file that was attached"):
        attachment.image()


@pytest.mark.parametrize("keep_times", [False, True], ids=["rewritten", "rewritten-times-restored"])
def test_A2_a_file_changed_in_place_after_it_was_attached_is_refused(tmp_path, keep_times):
    path = _png(tmp_path / "photo.bmp", (255, 0, 0), fmt="BMP")
    attachment = Attachment.from_path(path)
    before = path.stat()
    same_size = _png(tmp_path / "other.bmp", (0, 0, 255), fmt="BMP").read_bytes()
    assert len(same_size) == before.st_size
    with open(path, "r+b") as fp:  # the same inode, rewritten
        fp.write(same_size)
    if keep_times:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(AttachmentError, match="changed on disk since it was attached"):
        attachment.image()


def test_A2_an_unchanged_file_opens_again_and_again(tmp_path, monkeypatch):
    path = _png(tmp_path / "photo.png", (255, 0, 0))
    old = time.time() - 60
    os.utime(path, (old, old))  # settled: its identity can be trusted (the change time moved, though)
    attachment = Attachment.from_path(path)
    for _ in range(3):
        assert attachment.read_bytes() == path.read_bytes()
    assert attachment.image().getpixel((0, 0)) == (255, 0, 0)
    copy = Attachment.model_validate_json(attachment.model_dump_json())  # no identity: verified by hash
    assert copy.image().getpixel((0, 0)) == (255, 0, 0)


def test_A2_the_last_path_component_is_never_followed(folders):
    inside, outside = folders
    link = inside / "link.png"
    link.symlink_to(_png(outside / "secret.png", (0, 0, 255)))
    with pytest.raises(AttachmentError, match="is now a symbolic link"):
        _open_regular(link, "link.png")
