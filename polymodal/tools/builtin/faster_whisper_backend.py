"""The Transcriber's faster-whisper backend: Whisper in CTranslate2 format (int8 on the CPU).

transformers cannot read CTranslate2 checkpoints, and on a CPU faster-whisper is several times
faster than the transformers pipeline, so a CT2 folder (such as the packaged Whisper base) runs
here. It returns the same raw shape as the transformers pipeline (``text`` and ``chunks`` with
``timestamp`` pairs) plus the detected ``language``, so the Transcriber's decode step is shared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import ConfigurationError, MissingDependencyError
from polymodal.runtime.loading import load_checked

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools


@dataclass
class FasterWhisperBundle:
    """A loaded ``faster_whisper.WhisperModel`` and where it runs."""

    model: Any
    device: str


def is_ctranslate2_folder(model: str) -> bool:
    """True for a local folder holding a CTranslate2 Whisper: ``model.bin`` and no transformers architecture."""
    folder = Path(model).expanduser()
    if not (folder / "model.bin").is_file():
        return False
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # model.bin alone: transformers would not read it either
    return not config.get("architectures")


def load_faster_whisper(what: str, model: str, device: str, cpu_threads: int = 0) -> FasterWhisperBundle:
    """Load ``model`` (a CT2 folder or a faster-whisper hub id) for ``device`` ("cpu", "cuda:1", ...)."""
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise MissingDependencyError(f"{what} (faster-whisper backend)", "faster-whisper", "offline-models") from exc
    kind, _, index = device.partition(":")
    if kind != "cuda":
        kind = "cpu"  # CTranslate2 has no MPS backend
    compute_type = "float16" if kind == "cuda" else "int8"

    def build() -> Any:
        try:
            return WhisperModel(model, device=kind, device_index=int(index or 0), compute_type=compute_type,
                                cpu_threads=cpu_threads, local_files_only=True)
        except RuntimeError as exc:  # CTranslate2 reports a bad folder as RuntimeError
            msg = f"{what}: cannot load {model!r} with faster-whisper: {exc}"
            raise ConfigurationError(msg) from exc

    return FasterWhisperBundle(load_checked(what, model, build), f"{kind}:{index}" if index else kind)


def transcribe(
    bundle: FasterWhisperBundle, samples: np.ndarray, language: str | None, *, vad: bool = True
) -> dict[str, Any]:
    """Transcribe 16 kHz mono samples; the segment generator is consumed here, inside the forward step.

    ``vad`` runs faster-whisper's Silero voice-activity filter first: audio with no voice in it
    gives no segments (and so "(no speech)") instead of Whisper's invented "Thank you."
    """
    segments, info = bundle.model.transcribe(samples.astype(np.float32, copy=False), language=language,
                                             vad_filter=vad)
    chunks = [{"timestamp": (float(s.start), float(s.end)), "text": s.text} for s in segments]
    return {
        "text": " ".join(c["text"].strip() for c in chunks),
        "chunks": chunks,
        "language": info.language,
        "language_probability": float(info.language_probability),
    }
