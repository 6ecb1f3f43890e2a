"""Internal parts of the recognizer: the loaded models, a call's running state, pooling and weighting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from polymodal.tools.builtin.emotion.call_windows import (
    CallSource,
    FaceSettings,
    StreamState,
    WindowInput,
)
from polymodal.tools.builtin.emotion.fusion_head import FusionHead
from polymodal.tools.builtin.emotion.mood import (
    MoodWindow,
    WindowGrid,
)
from polymodal.tools.builtin.emotion.scores import canonical_emotion

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools


@dataclass
class _Bundle:
    audio_model: Any
    feature_extractor: Any
    face_model: Any
    image_processor: Any
    head: FusionHead | None
    device: str
    dtype: Any


@dataclass
class _Run:
    """One input on its way through the windows: its source, face tracker, stream record and results."""

    source: CallSource
    grid: WindowGrid
    faces: FaceSettings
    state: StreamState = field(default_factory=StreamState)
    windows: list[MoodWindow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _per_input(outputs: dict[str, Any], prepared: list[WindowInput]) -> list[tuple[WindowInput, Any, dict[str, Any]]]:
    """Split the batched (probabilities, embeddings) back per window: its voice, and its crops by track."""
    rows, voice_at, crop_at = [], 0, 0
    for item in prepared:
        voice = None
        if item.audio is not None:
            probs, emb = outputs["audio"]
            voice = (probs[voice_at], emb[voice_at])
            voice_at += 1
        faces: dict[str, Any] = {}
        if item.crops and "face" in outputs:
            probs, emb = outputs["face"]
            for track in dict.fromkeys(item.tracks):
                rows_of = [crop_at + i for i, name in enumerate(item.tracks) if name == track]
                faces[track] = (probs[rows_of], emb[rows_of])
            crop_at += len(item.crops)
        rows.append((item, voice, faces))
    return rows


def _track_names(windows: list[MoodWindow]) -> list[str]:
    names = dict.fromkeys(name for w in windows for name in w.faces)
    return sorted(names, key=lambda n: (len(n), n))


def _span(window: MoodWindow) -> float:
    return max(window.end - window.start, 1e-3)


def _pool(model: Any, hidden: Any, mask: Any) -> Any:
    """One vector per input: mean over time/tokens (masked for padded audio) or over a CNN's pixels."""
    hidden = hidden.float()
    if hidden.dim() == 4:  # (batch, channels, h, w)
        return hidden.mean(dim=(2, 3))
    if mask is not None and hasattr(model, "_get_feature_vector_attention_mask"):
        frame_mask = model._get_feature_vector_attention_mask(hidden.shape[1], mask).unsqueeze(-1).float()
        return (hidden * frame_mask).sum(1) / frame_mask.sum(1).clamp(min=1.0)
    return hidden.mean(dim=1)


def _distribution(model: Any, probs: Any) -> tuple[tuple[str, float], ...]:
    """A hashable (label, probability) tuple in canonical label names (aliases summed)."""
    merged: dict[str, float] = {}
    for index, p in enumerate(probs.tolist()):
        label = canonical_emotion(str(model.config.id2label.get(index, index)))
        merged[label] = merged.get(label, 0.0) + float(p)
    return tuple(merged.items())


def _weighted(parts: list[tuple[tuple[tuple[str, float], ...], float]]) -> dict[str, float]:
    """Weighted average of label distributions over the union of labels (missing label = 0)."""
    total_weight = sum(weight for _, weight in parts) or 1.0
    fused: dict[str, float] = {}
    for dist, weight in parts:
        for label, p in dist:
            fused[label] = fused.get(label, 0.0) + weight * p / total_weight
    norm = sum(fused.values()) or 1.0
    return {label: p / norm for label, p in fused.items()}


def _to(value: Any, bundle: _Bundle) -> Any:
    value = value.to(bundle.device)
    return value.to(bundle.dtype) if value.is_floating_point() else value
