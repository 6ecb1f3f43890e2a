"""Helpers for tests that use the real models PyPI wheels ship (the ``offline-models`` extra).

The assembled Whisper base goes to a cache folder under the system temp dir (never the user's
``~/.cache``), kept between sessions so the 145 MB assembly happens once per machine.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from polymodal import packaged

CACHE = Path(tempfile.gettempdir()) / "polymodal-test-cache"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "media"
VOICE_NOTE = EXAMPLES / "voice-note.wav"
VOICE_NOTE_TEXT = "Remember to call the dentist tomorrow morning and pick up the package from the post office."

OFFLINE_MODELS = packaged.installed("whisper-base") and packaged.installed("rapidocr")
needs_offline_models = pytest.mark.skipif(
    not OFFLINE_MODELS, reason="needs the offline-models extra: pip install 'polymodal[offline-models]'"
)


def use_test_cache() -> Path:
    """Point POLYMODAL_CACHE (this process and its subprocesses) at the shared test cache."""
    os.environ["POLYMODAL_CACHE"] = str(CACHE)
    return CACHE


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: what a word error rate compares."""
    cleaned = "".join(ch.lower() if ch.isalnum() or ch == "'" else " " for ch in text)
    return cleaned.split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, by edit distance over words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(1, len(ref))


def char_error_rate(reference: str, hypothesis: str) -> float:
    """Edit distance over characters (case and spacing normalised) / reference length."""
    ref, hyp = " ".join(reference.lower().split()), " ".join(hypothesis.lower().split())
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(1, len(ref))
