"""Transcriber: speech (an audio file, or a video's sound track) -> text with timestamps.

Whisper through transformers' ASR pipeline built around a model we load ourselves (so the class
and dtype are ours to choose). Audio is decoded and resampled to 16 kHz mono by the Attachment
(PyAV), because the pipeline cannot resample without torchaudio. The pipeline's chunked mode
(30 s windows) handles audio of any length and still batches several inputs together.

A CTranslate2 folder (the packaged Whisper base, or any faster-whisper conversion) runs through
the faster-whisper backend instead (``backend="auto"`` picks it from the folder); both produce the
same Transcript, and faster-whisper also reports the language it detected.

Whisper invents text for audio without speech ("Thank you.", "You"), even for room tone far below
anything audible (RELIABILITY A7). So "no speech" is decided before and inside the model: a level
gate answers "(no speech)" without running the model when less than ``MIN_SOUND_SECONDS`` of the
audio (in 30 ms frames) reaches ``min_speech_db`` dBFS RMS — silence, near-silence, a lone click;
and on the faster-whisper backend its voice-activity detector (Silero VAD) drops the stretches that
hold sound but no voice, so noise above the gate gives "(no speech)" too.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from polymodal.runtime.loading import load_checked
from polymodal.tools.base import AudioRef, ModelTool, ToolOutput
from polymodal.tools.builtin.faster_whisper_backend import (
    FasterWhisperBundle,
    is_ctranslate2_folder,
    load_faster_whisper,
)
from polymodal.tools.builtin.faster_whisper_backend import transcribe as fw_transcribe

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

DEFAULT_MODEL = "openai/whisper-base"
SAMPLE_RATE = 16000
NO_SPEECH = "(no speech)"
MIN_SOUND_SECONDS = 0.1
"""Less sound than this over the level gate is no speech (a click, a tap on the microphone)."""
_FRAME = SAMPLE_RATE * 30 // 1000  # 30 ms: a syllable's scale, where speech energy is measured


class TranscriberArgs(BaseModel):
    """Arguments of the transcriber."""

    model_config = ConfigDict(extra="forbid")

    audio: AudioRef
    language: str | None = Field(default=None, description="spoken language code, e.g. 'en'; default: detect")


class TranscriptSegment(BaseModel):
    """A stretch of speech with its time span in seconds."""

    start: float
    end: float
    text: str


class Transcript(BaseModel):
    """The transcriber's artifact: the whole text and its timestamped segments."""

    text: str
    segments: list[TranscriptSegment] = Field(default_factory=list)
    language: str | None = None
    duration: float = 0.0

    def timestamped(self) -> str:
        """One ``[0:05–0:09] text`` line per segment."""
        return "\n".join(f"[{_clock(s.start)}–{_clock(s.end)}] {s.text}" for s in self.segments) or self.text


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def sound_seconds(samples: np.ndarray, min_db: float) -> float:
    """Seconds of 16 kHz ``samples`` whose 30 ms frames reach ``min_db`` dBFS RMS (a full-scale sine is -3)."""
    if samples.size == 0:
        return 0.0
    padded = np.pad(samples, (0, -len(samples) % _FRAME)).astype(np.float64, copy=False)
    power = np.mean(padded.reshape(-1, _FRAME) ** 2, axis=1)
    return float(np.count_nonzero(power >= 10 ** (min_db / 10))) * _FRAME / SAMPLE_RATE


@dataclass
class _Prepared:
    samples: np.ndarray
    language: str | None
    silent: bool
    """No speech to transcribe: the level gate said so, and the model does not run on it."""

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


class Transcriber(ModelTool):
    """Transcribes speech with timestamps; a video attachment's sound track counts as audio."""

    checkpoint_model: ClassVar[bool] = True

    name: str = "transcriber"
    description: str = (
        "Transcribe speech in an audio file or in a video's sound track to text, with timestamps. Use it "
        "for 'what does this voice note say', 'transcribe', 'what is said in this video'."
    )
    args_schema: type[BaseModel] = TranscriberArgs
    model: str = DEFAULT_MODEL
    max_new_tokens: int = 440
    backend: Literal["auto", "transformers", "faster-whisper"] = "auto"
    """Which library runs the model. "auto": faster-whisper for a CTranslate2 folder (``model.bin``
    and no transformers architecture in its config), transformers for everything else."""
    cpu_threads: int = 0
    """faster-whisper's CPU threads (0: its default)."""
    min_speech_db: float | None = -55.0
    """The level gate: audio with less than 0.1 s of 30 ms frames at this RMS level (dBFS) or louder is
    "(no speech)" and never reaches the model. -55 dBFS keeps a voice recorded 40 dB too quietly
    (peaks under 0.01) and refuses room tone. None: only all-zero audio counts as silence."""
    vad: bool = True
    """faster-whisper backend: drop stretches without a voice (Silero VAD) before transcribing, so
    noise above the level gate is not turned into text. The transformers backend has only the gate."""

    direct_answer: ClassVar[bool] = True

    def resolved_backend(self) -> str:
        """The backend ``backend`` means for this ``model``."""
        if self.backend != "auto":
            return self.backend
        return "faster-whisper" if is_ctranslate2_folder(self.model) else "transformers"

    def cache_key(self) -> str:
        return f"{super().cache_key()}:{self.resolved_backend()}"

    @property
    def uses_torch(self) -> bool:
        return self.resolved_backend() != "faster-whisper"

    def load(self, device: str, dtype: Any) -> Any:
        if self.resolved_backend() == "faster-whisper":
            return load_faster_whisper(self.name, self.model, device, self.cpu_threads)
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

        processor = load_checked(self.name, self.model, lambda: AutoProcessor.from_pretrained(self.model))
        model = AutoModelForSpeechSeq2Seq.from_pretrained(self.model, dtype=dtype).to(device).eval()
        return pipeline(
            "automatic-speech-recognition",
            model=model,
            tokenizer=processor.tokenizer,
            feature_extractor=processor.feature_extractor,
            device=device,
            dtype=dtype,
        )

    def coalesces(self) -> bool:
        """faster-whisper runs one input per call, so sharing calls would only queue them."""
        return self.resolved_backend() == "transformers" and super().coalesces()

    def batch_group(self, prepared: _Prepared) -> Hashable:
        """One generate call takes one language: only inputs asking for the same one share it."""
        return prepared.language

    def prepare(self, inputs: Any) -> list[_Prepared]:
        prepared = []
        for item in inputs:
            samples = item["audio"].audio(SAMPLE_RATE)
            prepared.append(_Prepared(samples, item.get("language"), self._silent(samples)))
        return prepared

    def _silent(self, samples: np.ndarray) -> bool:
        if samples.size == 0 or not np.any(samples):
            return True
        return self.min_speech_db is not None and sound_seconds(samples, self.min_speech_db) < MIN_SOUND_SECONDS

    def encode(self, bundle: Any, prepared: list[_Prepared]) -> dict[str, Any]:
        spoken = [p for p in prepared if not p.silent]
        languages = {p.language for p in spoken}
        # One generate call takes one language; mixed requests fall back to detection.
        language = languages.pop() if len(languages) == 1 else None
        inputs = [{"raw": p.samples, "sampling_rate": SAMPLE_RATE} for p in spoken]
        return {"inputs": inputs, "language": language, "languages": [p.language for p in spoken]}

    def forward(self, bundle: Any, encoded: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = encoded["inputs"]
        if not inputs:
            return []
        if isinstance(bundle, FasterWhisperBundle):
            # faster-whisper takes one input per call, so each keeps its own language.
            pairs = zip(inputs, encoded["languages"], strict=True)
            return [fw_transcribe(bundle, item["raw"], lang, vad=self.vad) for item, lang in pairs]
        generate_kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens}
        if encoded["language"]:
            generate_kwargs["language"] = encoded["language"]
        out = bundle(
            inputs,
            batch_size=len(inputs),
            chunk_length_s=30,
            return_timestamps=True,
            generate_kwargs=generate_kwargs,
        )
        return out if isinstance(out, list) else [out]

    def decode(self, bundle: Any, outputs: list[dict[str, Any]], prepared: list[_Prepared]) -> list[ToolOutput]:
        results, spoken = [], iter(outputs)
        for item in prepared:
            if item.silent:
                transcript = Transcript(text=NO_SPEECH, duration=item.duration, language=item.language)
            else:
                transcript = _transcript(next(spoken), item)
            results.append(ToolOutput(content=transcript.text, artifact=transcript))
        return results


def _transcript(raw: dict[str, Any], item: _Prepared) -> Transcript:
    """Build a Transcript, clamping timestamps into the audio (Whisper can overshoot the end)."""
    segments = []
    for chunk in raw.get("chunks") or []:
        start, end = chunk.get("timestamp") or (0.0, None)
        start = min(float(start or 0.0), item.duration)
        end = min(float(end if end is not None else item.duration), item.duration)
        text = " ".join(str(chunk.get("text", "")).split())
        if text:
            segments.append(TranscriptSegment(start=start, end=max(start, end), text=text))
    text = " ".join(str(raw.get("text", "")).split()) or NO_SPEECH
    language = raw.get("language") or item.language  # the detected language, when the backend reports it
    return Transcript(text=text, segments=segments, language=language, duration=item.duration)
