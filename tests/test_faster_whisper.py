"""The Transcriber's faster-whisper backend with the real packaged Whisper base (CPU, offline)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.offline_models import VOICE_NOTE, VOICE_NOTE_TEXT, needs_offline_models, use_test_cache, word_error_rate

from polymodal import Attachment, ConfigurationError, packaged
from polymodal.tools import Transcriber, Transcript
from polymodal.tools.builtin.faster_whisper_backend import is_ctranslate2_folder

pytestmark = [needs_offline_models, pytest.mark.slow]


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    use_test_cache()
    return Transcriber(model=str(packaged.whisper_base()), device="cpu", cpu_threads=1)


def test_real_whisper_base_transcribes_speech_with_timestamps_and_language(transcriber, media):
    silent = Attachment.from_audio(np.zeros(16000, dtype=np.float32), 16000, name="silence.wav")
    outputs = transcriber.execute_batch([{"audio": Attachment.from_path(VOICE_NOTE)}, {"audio": silent}])
    transcript = outputs[0].artifact
    assert isinstance(transcript, Transcript)
    wer = word_error_rate(VOICE_NOTE_TEXT, transcript.text)
    assert wer < 0.25, (wer, transcript.text)
    assert transcript.language == "en"  # detected: no language was given
    assert transcript.segments and all(0 <= s.start <= s.end <= transcript.duration for s in transcript.segments)
    assert transcript.duration == pytest.approx(5.83, abs=0.05)
    assert outputs[1].content == "(no speech)"  # silence never reaches Whisper (no hallucinated text)


def test_backend_auto_detects_ctranslate2_folders(tiny_models, tmp_path):
    assert is_ctranslate2_folder(str(packaged.whisper_base()))
    assert not is_ctranslate2_folder(str(tiny_models.path("whisper-asr")))  # transformers: config has architectures
    assert Transcriber(model=str(tiny_models.path("whisper-asr"))).resolved_backend() == "transformers"
    forced = Transcriber(model="anything", backend="faster-whisper")
    assert forced.resolved_backend() == "faster-whisper" and forced.cache_key().endswith(":faster-whisper")


def test_T4_a_broken_ctranslate2_folder_is_a_configuration_error(tmp_path, media):
    (tmp_path / "model.bin").write_bytes(b"not a model")
    (tmp_path / "config.json").write_text(json.dumps({"lang_ids": []}))
    broken = Transcriber(model=str(tmp_path))
    assert broken.resolved_backend() == "faster-whisper"
    with pytest.raises(ConfigurationError, match=f"transcriber: cannot load .*{tmp_path.name}"):
        broken.execute(audio=Attachment.from_path(media.wav()))
    missing = Transcriber(model=str(tmp_path / "absent"), backend="faster-whisper")
    with pytest.raises(ConfigurationError, match="does not exist"):
        missing.execute(audio=Attachment.from_path(media.wav()))


def test_an_offline_profile_transcription_never_imports_torch():
    """faster-whisper and ONNX OCR need no torch: not importing it saves 1-2 s and ~180 MB a run (14.11)."""
    import subprocess
    import sys
    from pathlib import Path

    use_test_cache()
    script = ("import sys; from polymodal.profiles import build_tools; from polymodal.media import Attachment; "
              "(t,) = [t for t in build_tools('offline') if t.name == 'transcriber']; "
              "print(t.execute(audio=Attachment.from_path(sys.argv[1])).content); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script, str(VOICE_NOTE)], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    text, torch_loaded = done.stdout.strip().splitlines()[-2:]
    assert word_error_rate(VOICE_NOTE_TEXT, text) < 0.25 and torch_loaded == "False", done.stdout + done.stderr
