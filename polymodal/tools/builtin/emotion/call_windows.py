"""A call cut into windows and streamed: each window's sound and the faces seen in it, nothing more.

The emotion recognizer classifies a call window by window; this module feeds it. The video's
frames come from :func:`~polymodal.tools.builtin.keyframes.frames_at` (the video summarizer's streaming
decoder) at ``frames`` evenly spaced times per window; each sampled frame is scanned for faces,
the faces are tracked (``face 1``, ``face 2``...) and cropped, and the frame is dropped. The sound
comes from :meth:`~polymodal.media.Attachment.iter_audio`, cut at the window's edges. One
:class:`WindowInput` at a time leaves this module, so memory holds a window's crops and sound,
never the call: peak memory does not grow with the call's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from polymodal.errors import MediaLimitError
from polymodal.media import Attachment
from polymodal.tools.builtin.emotion.faces import FaceDetector, FaceTracker, crop_face
from polymodal.tools.builtin.emotion.mood import WindowGrid
from polymodal.tools.builtin.keyframes import Sampling, frames_at

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

WHOLE_PICTURE = "picture"
"""The track name of a whole frame or photo classified as it is (no detector, or a photo with no face found)."""


@dataclass
class FaceSettings:
    """How faces are found in a sampled frame; ``detector=None`` classifies whole frames."""

    detector: FaceDetector | None
    margin: float = 0.2
    max_faces: int = 4
    tracker: FaceTracker = field(default_factory=FaceTracker)


@dataclass
class CallSource:
    """What one input offers: a sound source, and a video or a photo to find faces in."""

    name: str
    audio: Attachment | None = None
    video: Attachment | None = None
    image: Image.Image | None = None
    duration: float | None = None


@dataclass
class WindowInput:
    """One window ready for the models: its sound and its face crops, each crop named by its track."""

    name: str
    start: float
    end: float
    audio: np.ndarray | None = None
    crops: list[Image.Image] = field(default_factory=list)
    tracks: list[str] = field(default_factory=list)
    frames: int = 0
    """Frames sampled in this window (faces or not)."""


@dataclass
class StreamState:
    """What a pass saw: the video's sampling record (where decoding stopped), and whether the sound ended."""

    sampling: Sampling = field(default_factory=Sampling)
    audio_ended: bool = False


def faces_in(image: Image.Image, time: float, faces: FaceSettings, *, photo: bool = False
             ) -> tuple[list[Image.Image], list[str]]:
    """The crops of the faces in ``image`` and their track names.

    Without a detector the whole picture is the crop; so it is for a ``photo`` with no face found
    (a photo may be a tight face crop already, which a detector misses). A video frame with no face
    gives nothing: the room is not a face.
    """
    if faces.detector is None:
        return [image], [WHOLE_PICTURE]
    boxes = faces.detector.detect(np.asarray(image))[: faces.max_faces]
    if photo and not boxes:
        return [image], [WHOLE_PICTURE]
    names = faces.tracker.update(time, boxes)
    return [crop_face(image, box, faces.margin) for box in boxes], names


class _AudioCursor:
    """Cuts a stream of sample chunks at given sample counts, holding at most one chunk's leftover."""

    def __init__(self, chunks: Iterator[np.ndarray], state: StreamState, rate: int) -> None:
        self._chunks, self._state, self._rate = chunks, state, rate
        self._buffer = np.zeros(0, np.float32)
        self._position = 0  # samples handed out so far

    def take_until(self, seconds: float) -> np.ndarray:
        want = max(0, int(round(seconds * self._rate)) - self._position)
        parts, have = [], 0
        while have < want:
            if not self._buffer.size:
                chunk = next(self._chunks, None)
                if chunk is None:
                    self._state.audio_ended = True
                    break
                self._buffer = chunk
            piece = self._buffer[: want - have]
            self._buffer = self._buffer[piece.size :]
            parts.append(piece)
            have += piece.size
        self._position += have
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def iter_windows(source: CallSource, grid: WindowGrid, frames: int, faces: FaceSettings, state: StreamState, *,
                 rate: int, max_seconds: float, max_windows: int, max_side: int = 1280,
                 duration_hint: str = "a larger max_seconds", windows_hint: str = "a larger max_windows",
                 ) -> Iterator[WindowInput]:
    """The windows of ``source`` in time order, each holding its sound and its faces.

    ``frames`` frames per window are sampled (shrunk to ``max_side`` at most) and scanned for faces;
    the sound is cut at the window's edges (``rate`` samples per second).

    Raises:
        MediaLimitError: the stream runs past ``max_seconds`` or needs more than ``max_windows``
            windows (a header can understate the length); the hints name the settings to raise.
        AttachmentError: the video or the sound cannot be decoded.
    """
    if source.video is None and source.audio is None:  # a photo: one window of no length
        crops, tracks = faces_in(source.image, 0.0, faces, photo=True) if source.image is not None else ([], [])
        yield WindowInput(source.name, 0.0, 0.0, None, crops, tracks, frames=1 if source.image is not None else 0)
        return
    pictures = frames_at(source.video, grid.sample_times(frames), state.sampling) if source.video else None
    sound = _AudioCursor(source.audio.iter_audio(rate), state, rate) if source.audio else None
    still = faces_in(source.image, 0.0, faces, photo=True) if source.image is not None else None
    pending: tuple[float, Any] | None = None
    index = 0
    while True:
        start, end = grid.bounds(index)
        if start >= max_seconds - 1e-6:
            raise MediaLimitError(source.name, f"runs past {max_seconds:g} s (raise {duration_hint})")
        window = WindowInput(source.name, start, end)
        while pictures is not None:
            if pending is None:
                pending = next(pictures, None)
                if pending is None:
                    pictures = None
                    break
            at, frame = pending
            if at >= end - 1e-9:
                break
            pending = None
            image = _picture(frame, max_side)
            crops, tracks = faces_in(image, at, faces)
            window.crops += crops
            window.tracks += tracks
            window.frames += 1
        if sound is not None:
            window.audio = sound.take_until(end)
            if state.audio_ended:
                sound = None
        sound_samples = 0 if window.audio is None else window.audio.size
        if index >= grid.planned and not window.frames and sound_samples < rate:
            return  # past the declared end with under a second of sound and no frame: the stream is over
        if still is not None:  # a photo given with a recording is the face of every window
            window.crops, window.tracks, window.frames = list(still[0]), list(still[1]), 1
        if index >= max_windows:
            raise MediaLimitError(source.name, f"needs more than {max_windows} windows (raise {windows_hint})")
        yield window
        if pictures is None and sound is None:
            return
        index += 1


def _picture(frame: Any, max_side: int) -> Image.Image:
    image: Image.Image = frame.to_image()
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
    return image
