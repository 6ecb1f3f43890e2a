"""Emotion recognition from a voice and/or a face: audio classifier + image classifier + late fusion.

- Voice: an audio-classification checkpoint (wav2vec2/HuBERT emotion models) on 16 kHz mono audio.
  A video's sound track counts as audio. Loaded with ``AutoFeatureExtractor`` (``AutoProcessor``
  fails for wav2vec2 classifiers, which have no CTC vocabulary).
- Face: an image-classification checkpoint (facial-expression ViTs) on a face photo, or on a few
  frames sampled evenly from a video. There is no face detector: whole frames are classified, so
  the tool suits close-up, talking-head footage (crop faces first for anything else).
- Fusion: labels are aligned by name (``hap`` = ``happy``...), then by default a weighted average
  of the two distributions. Optionally a trained :class:`~polymodal.tools.fusion_head.FusionHead`
  (concatenated embeddings -> linear classifier) replaces the average when both signals exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from polymodal.errors import AttachmentError, ConfigurationError, ToolError
from polymodal.media import Attachment, Modality
from polymodal.tools.base import ModelTool, ToolOutput
from polymodal.tools.cache import load_checked
from polymodal.tools.fusion_head import FusionHead

__all__ = ["EmotionArgs", "EmotionRecognizer", "EmotionScores", "canonical_emotion"]

DEFAULT_AUDIO_MODEL = "superb/wav2vec2-base-superb-er"
DEFAULT_FACE_MODEL = "trpakov/vit-face-expression"
SAMPLE_RATE = 16000

# Short or variant label names used by emotion checkpoints -> one vocabulary, so voice and face agree.
_ALIASES = {
    "neu": "neutral", "hap": "happy", "happiness": "happy", "joy": "happy", "ang": "angry", "anger": "angry",
    "sadness": "sad", "fea": "fear", "fearful": "fear", "dis": "disgust", "disgusted": "disgust",
    "sur": "surprise", "surprised": "surprise", "cal": "calm",
}


def canonical_emotion(label: str) -> str:
    """One spelling per emotion: lower case, aliases resolved (``"HAP"`` -> ``"happy"``)."""
    key = label.strip().lower()
    return _ALIASES.get(key, key)


def _media_arg(modality: Modality, description: str) -> Any:
    # ``AudioRef | None`` would lose the modality marker inside the union, so optional media args
    # carry it on the field itself (base.attachment_fields reads it from there).
    return Field(default=None, description=description, json_schema_extra={"modality": modality.value})


class EmotionArgs(BaseModel):
    """Arguments of emotion_recognizer: any of a voice recording, a video, or a face photo."""

    model_config = ConfigDict(extra="forbid")

    audio: str | None = _media_arg(Modality.AUDIO, "id of an audio attachment (or a video, for its sound track)")
    video: str | None = _media_arg(Modality.VIDEO, "id of a video: faces in its frames, and its sound track")
    image: str | None = _media_arg(Modality.IMAGE, "id of an image showing a face")

    @model_validator(mode="after")
    def _something(self) -> EmotionArgs:
        if self.audio is None and self.video is None and self.image is None:
            raise ValueError("give at least one of 'audio', 'video' or 'image'")
        if self.video is not None and self.image is not None:
            raise ValueError("give 'video' or 'image' for the face, not both")
        return self


class EmotionScores(BaseModel):
    """The artifact of emotion_recognizer."""

    label: str
    """The most likely emotion after fusion."""
    probabilities: dict[str, float]
    """Fused distribution over emotions, most likely first (sums to 1)."""
    audio: dict[str, float] | None = None
    """The voice model's own distribution, when there was audio."""
    face: dict[str, float] | None = None
    """The face model's distribution averaged over the sampled frames, when there was a face."""
    frames: int = 0
    fusion: Literal["audio", "face", "average", "head"]


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
class _Prepared:
    name: str
    audio: np.ndarray | None
    frames: list[Any] = field(default_factory=list)


class EmotionRecognizer(ModelTool):
    """Recognises emotion in a voice, a face, or both (a video), fusing the two late."""

    name: str = "emotion_recognizer"
    description: str = (
        "Recognise the emotion (happy, sad, angry, neutral...) expressed by a voice recording, a face "
        "photo, or a video (its faces and its sound track together). Returns the most likely emotion "
        "with probabilities. Use it for 'how does the speaker feel', 'is this person happy'."
    )
    args_schema: type[BaseModel] = EmotionArgs
    model: str = DEFAULT_AUDIO_MODEL
    """Audio-classification checkpoint (hub id or folder)."""
    face_model: str | None = DEFAULT_FACE_MODEL
    """Image-classification checkpoint for faces; None: voice only."""
    audio_weight: float = Field(default=0.5, ge=0.0)
    face_weight: float = Field(default=0.5, ge=0.0)
    frames: int = Field(default=4, ge=1, le=64)
    """Frames sampled evenly from a video for the face model."""
    max_audio_seconds: float = 30.0
    """Only the first this-many seconds are classified (wav2vec2 attention grows with the square)."""
    head: str | None = None
    """Folder of a trained FusionHead (see FusionHead.save); used when both voice and face are present."""

    direct_answer: ClassVar[bool] = True

    def cache_key(self) -> str:
        return f"{super().cache_key()}|{self.face_model}|{self.head}"

    def load(self, device: str, dtype: Any) -> _Bundle:
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        extractor = load_checked(self.name, self.model, lambda: AutoFeatureExtractor.from_pretrained(self.model))
        audio_model = AutoModelForAudioClassification.from_pretrained(self.model, dtype=dtype).to(device).eval()
        face_model = image_processor = None
        if self.face_model is not None:
            from transformers import AutoImageProcessor, AutoModelForImageClassification

            face = self.face_model
            image_processor = load_checked(self.name, face, lambda: AutoImageProcessor.from_pretrained(face))
            face_model = AutoModelForImageClassification.from_pretrained(face, dtype=dtype).to(device).eval()
        head = FusionHead.load(self.head) if self.head is not None else None
        return _Bundle(audio_model, extractor, face_model, image_processor, head, device, dtype)

    # -- the ModelTool steps ---------------------------------------------------------------

    def prepare(self, inputs: Sequence[dict[str, Any]]) -> list[_Prepared]:
        return [self._prepare_one(item) for item in inputs]

    def _prepare_one(self, item: dict[str, Any]) -> _Prepared:
        audio_src: Attachment | None = item.get("audio")
        video: Attachment | None = item.get("video")
        image: Attachment | None = item.get("image")
        if audio_src is None and video is not None and video.has_audio:
            audio_src = video  # a video's sound track is the voice
        first = audio_src or video or image
        if first is None:  # the args schema forbids this; a direct execute() call skips the schema
            raise ToolError(self.name, "give at least one of 'audio', 'video' or 'image'")
        prepared = _Prepared(name=first.id or first.name, audio=None)
        if audio_src is not None:
            samples = audio_src.audio(SAMPLE_RATE)[: int(self.max_audio_seconds * SAMPLE_RATE)]
            prepared.audio = samples if samples.size >= SAMPLE_RATE // 10 else None  # under 0.1 s: no voice
        if video is not None:
            prepared.frames = _sample_frames(video, self.frames)
        elif image is not None:
            prepared.frames = [image.image()]
        if prepared.frames and self.face_model is None:
            prepared.frames = []
        if prepared.audio is None and not prepared.frames:
            msg = "has no usable voice (no or too short audio) and no face input for this recognizer"
            raise AttachmentError(prepared.name, msg)
        return prepared

    def encode(self, bundle: _Bundle, prepared: list[_Prepared]) -> dict[str, Any]:
        encoded: dict[str, Any] = {"audio": None, "face": None}
        voices = [p.audio for p in prepared if p.audio is not None]
        if voices:
            # Checkpoints trained without attention masks (wav2vec2-base and its emotion fine-tunes say
            # so with return_attention_mask=False) read zero padding as signal: run those unpadded, one
            # clip per forward, so a batch gives exactly what single calls give.
            groups = [voices] if bundle.feature_extractor.return_attention_mask else [[v] for v in voices]
            encoded["audio"] = [
                {k: _to(v, bundle) for k, v in bundle.feature_extractor(
                    group, sampling_rate=SAMPLE_RATE, padding=True, return_tensors="pt").items()}
                for group in groups
            ]
        frames = [frame for p in prepared for frame in p.frames]
        if frames:
            pixels = bundle.image_processor(images=frames, return_tensors="pt")
            encoded["face"] = {k: _to(v, bundle) for k, v in pixels.items()}
        return encoded

    def forward(self, bundle: _Bundle, encoded: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if encoded["audio"] is not None:
            import torch

            probs, pooled = [], []
            for features in encoded["audio"]:
                result = bundle.audio_model(**features, output_hidden_states=True)
                probs.append(result.logits.float().softmax(-1))
                pooled.append(_pool(bundle.audio_model, result.hidden_states[-1], features.get("attention_mask")))
            out["audio"] = (torch.cat(probs), torch.cat(pooled))
        if encoded["face"] is not None:
            result = bundle.face_model(**encoded["face"], output_hidden_states=True)
            out["face"] = (result.logits.float().softmax(-1), _pool(bundle.face_model, result.hidden_states[-1], None))
        return out

    def decode(self, bundle: _Bundle, outputs: dict[str, Any], prepared: list[_Prepared]) -> list[ToolOutput]:
        results = []
        for item, voice, face in _per_input(outputs, prepared):
            scores = self._fuse(bundle, item, voice, face)
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(scores.probabilities.items())[:3])
            results.append(ToolOutput(content=f"{scores.label} ({top}; from {_sources(scores)})", artifact=scores))
        return results

    # -- fusion ----------------------------------------------------------------------------

    def _fuse(self, bundle: _Bundle, item: _Prepared, voice: Any, face: Any) -> EmotionScores:
        audio_dist = _distribution(bundle.audio_model, voice[0]) if voice is not None else None
        face_dist = _distribution(bundle.face_model, face[0].mean(0)) if face is not None else None
        if audio_dist is not None and face_dist is not None and bundle.head is not None:
            embedding = np.concatenate([voice[1].numpy(), face[1].mean(0).numpy()])[None, :]
            fused, how = dict(zip(bundle.head.labels, bundle.head.predict_proba(embedding)[0].tolist(),
                                  strict=True)), "head"
        elif audio_dist is not None and face_dist is not None:
            fused, how = _weighted([(audio_dist, self.audio_weight), (face_dist, self.face_weight)]), "average"
        elif audio_dist is not None:
            fused, how = dict(audio_dist), "audio"
        else:
            assert face_dist is not None
            fused, how = dict(face_dist), "face"
        ordered = dict(sorted(fused.items(), key=lambda kv: -kv[1]))
        return EmotionScores(label=next(iter(ordered)), probabilities=ordered,
                             audio=dict(audio_dist) if audio_dist else None,
                             face=dict(face_dist) if face_dist else None,
                             frames=len(item.frames), fusion=how)  # type: ignore[arg-type]

    # -- training data for a FusionHead ------------------------------------------------------

    def embeddings(self, inputs: Sequence[dict[str, Any]]) -> np.ndarray:
        """Concatenated (voice, mean face) embeddings, one row per input: the features a FusionHead learns from.

        Every input needs both a voice and a face. Media arguments are Attachments (or paths).
        """
        resolved = [self.resolve_inputs(item, None) for item in inputs]
        prepared = self.prepare(resolved)
        if any(p.audio is None or not p.frames for p in prepared):
            msg = f"{self.name}: every input needs both a voice and a face to build embeddings"
            raise ConfigurationError(msg)
        bundle = self.bundle()
        import torch

        with torch.inference_mode():
            outputs = self.forward(bundle, self.encode(bundle, prepared))
        rows = [np.concatenate([voice[1].numpy(), face[1].mean(0).numpy()]) for _, voice, face in
                _per_input(outputs, prepared)]
        return np.stack(rows).astype(np.float32)


def _sample_frames(video: Attachment, count: int) -> list[Any]:
    """``count`` frames at evenly spaced times (centres of equal slices), decoded in one pass."""
    duration = video.duration or 0.0
    targets = [(i + 0.5) * duration / count for i in range(count)] if duration > 0 else [0.0]
    frames: list[Any] = []
    last = None
    with video.open_av() as container:
        if not container.streams.video:
            raise AttachmentError(video.name, "has no video track to read faces from")
        stream = container.streams.video[0]
        step = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
        for frame in container.decode(stream):
            last = frame
            # A frame shows from its time until the next one: take it for every target in that span.
            while len(frames) < len(targets) and (frame.time or 0.0) + step > targets[len(frames)]:
                frames.append(frame.to_image().convert("RGB"))
            if len(frames) == len(targets):
                break
    while last is not None and len(frames) < len(targets):  # a header that overstated the duration
        frames.append(last.to_image().convert("RGB"))
    if not frames:
        raise AttachmentError(video.name, "has no decodable video frame")
    return frames


def _per_input(outputs: dict[str, Any], prepared: list[_Prepared]) -> list[tuple[_Prepared, Any, Any]]:
    """Split the batched (probabilities, embeddings) back into one (voice, face) pair per input."""
    rows, voice_at, frame_at = [], 0, 0
    for item in prepared:
        voice = face = None
        if item.audio is not None:
            probs, emb = outputs["audio"]
            voice = (probs[voice_at], emb[voice_at])
            voice_at += 1
        if item.frames:
            probs, emb = outputs["face"]
            n = len(item.frames)
            face = (probs[frame_at : frame_at + n], emb[frame_at : frame_at + n])
            frame_at += n
        rows.append((item, voice, face))
    return rows


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


def _sources(scores: EmotionScores) -> str:
    return {"audio": "voice", "face": f"face in {scores.frames} frame(s)",
            "average": "voice and face", "head": "voice and face, trained fusion"}[scores.fusion]


def _to(value: Any, bundle: _Bundle) -> Any:
    value = value.to(bundle.device)
    return value.to(bundle.dtype) if value.is_floating_point() else value
