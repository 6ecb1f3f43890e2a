"""Emotion labels and scores: the canonical label set, the tool's arguments and its output value."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from polymodal.media import Modality
from polymodal.tools.builtin.emotion.mood import (
    FACES,
    FUSED,
    VOICE,
    Fusion,
    Mood,
    MoodSpan,
    MoodWindow,
    clock,
    describe_changes,
)

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

DEFAULT_AUDIO_MODEL = "superb/wav2vec2-base-superb-er"
DEFAULT_FACE_MODEL = "trpakov/vit-face-expression"
SAMPLE_RATE = 16000
_MIN_VOICE = SAMPLE_RATE // 10  # under 0.1 s of sound is no voice

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
    """The artifact of emotion_recognizer: the overall mood, and how it went over time.

    The first fields are the overall result (as before timelines existed); ``timeline`` has one
    row per person/signal and run of equal labels, ``windows`` the per-window detail.
    """

    label: str
    """The most likely emotion over the whole input, after fusion."""
    probabilities: dict[str, float]
    """Fused distribution over emotions, averaged over the windows by duration, most likely first."""
    audio: dict[str, float] | None = None
    """The voice model's distribution, averaged over the windows with a voice."""
    face: dict[str, float] | None = None
    """The face model's distribution, averaged over the faces and the windows with a face."""
    frames: int = 0
    """Frames (or photos) looked at for faces."""
    fusion: Fusion
    """``head`` or ``average`` when voice and face both counted somewhere, else ``audio`` or ``face``."""
    timeline: list[MoodSpan] = Field(default_factory=list)
    """Rows (start, end, who, label, probabilities): who is ``fused``, ``voice``, ``face 1``..., or
    ``faces`` for "no face" stretches; adjacent windows with the same label are merged."""
    windows: list[MoodWindow] = Field(default_factory=list)
    """Per window: the voice's, each face's and the fused distribution."""
    faces: list[str] = Field(default_factory=list)
    """The faces told apart (``face 1``, ``face 2``...); ``picture`` when whole pictures were classified."""
    window: float | None = None
    """Seconds per window (None for a photo)."""
    duration: float = 0.0
    """Seconds covered by the windows (0 for a photo)."""
    notes: list[str] = Field(default_factory=list)
    """What could not be used, said plainly (no sound track, no face found, decoding stopped...)."""

    @property
    def overall(self) -> Mood:
        """The fused label with its probabilities, over the whole input."""
        return Mood(label=self.label, probabilities=self.probabilities)

    def changes(self, who: str = FUSED) -> str:
        """``calm until 03:10, then frustrated``: the timeline of one person or signal in words."""
        return describe_changes(self.timeline, who)

    def text(self) -> str:
        """What the tool returns as content: the overall label first, then the changes and notes."""
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(self.probabilities.items())[:3])
        lines = [f"{self.label} ({top}; from {self._sources()})"]
        if len(self.windows) > 1:
            lines.append(f"Over time ({len(self.windows)} windows of {self.window:g} s): {self.changes()}.")
            tracked = [name for name in self.faces if any(s.who == name for s in self.timeline)]
            if self.audio is not None and tracked:
                lines.append(f"Voice: {self.changes(VOICE)}.")
            if len(tracked) > 1 or (tracked and self.audio is not None):
                lines += [f"{name.capitalize()}: {self.changes(name)}." for name in tracked]
            blank = [s for s in self.timeline if s.who == FACES]
            if blank:
                lines.append("No face in view: " + ", ".join(f"{clock(s.start)}-{clock(s.end)}" for s in blank) + ".")
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)

    def _sources(self) -> str:
        if self.fusion in ("audio", "face") and len(self.windows) <= 1:
            return {"audio": "voice", "face": f"face in {self.frames} frame(s)"}[self.fusion]
        what = {"audio": "voice", "face": "faces", "average": "voice and faces",
                "head": "voice and faces, trained fusion"}[self.fusion]
        return what if len(self.windows) <= 1 else f"{what}, {self.duration:.0f} s"
