"""Generated video calls with a real face: scikit-image's ``astronaut.png`` (public domain), moved around.

The photo ships inside the scikit-image wheel (a dev dependency), so nothing is downloaded or
committed. A call is a list of :class:`Shot` s: for each, how long it lasts, where each face is
(it glides from one position to another) and what the sound is (a tone, or silence). Frames and
sound are generated and encoded one at a time, so a ten-minute call costs no more memory than a
ten-second one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .media_files import tone, write_video

GREY = 128
HEAD_BOX = (120, 20, 330, 240)  # (left, top, right, bottom) of the astronaut's head in the 512x512 photo


@lru_cache(maxsize=8)
def astronaut_head(height: int = 110, tint: str = "none") -> np.ndarray:
    """The astronaut's head and shoulders, ``height`` pixels tall; ``tint`` "bgr" swaps red and blue.

    The swapped colours keep the grey-level pattern a face detector reads (the face is still found)
    while a colour-sensitive classifier sees a different picture.
    """
    from PIL import Image
    from skimage import data

    head = Image.fromarray(data.astronaut()).crop(HEAD_BOX)
    width = round(head.width * height / head.height)
    out = np.asarray(head.resize((width, height), Image.Resampling.BILINEAR))
    if tint == "bgr":
        out = out[..., ::-1]
    out = np.ascontiguousarray(out)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Placement:
    """One face in a shot: the picture, and where its top-left corner goes from and to."""

    head: np.ndarray = field(compare=False)
    start: tuple[int, int]
    end: tuple[int, int] | None = None


@dataclass(frozen=True)
class Shot:
    """A stretch of the call: ``seconds`` long, these faces, and a tone (None: silence)."""

    seconds: float
    faces: tuple[Placement, ...] = ()
    freq: float | None = 440.0


def call_frames(shots: Sequence[Shot], size: tuple[int, int], fps: int) -> Iterator[np.ndarray]:
    """The frames of the call, one at a time (grey background, faces pasted where they are)."""
    width, height = size
    for shot in shots:
        count = int(round(shot.seconds * fps))
        for i in range(count):
            frame = np.full((height, width, 3), GREY, np.uint8)
            share = i / max(1, count - 1)
            for face in shot.faces:
                x0, y0 = face.start
                x1, y1 = face.end or face.start
                x, y = round(x0 + (x1 - x0) * share), round(y0 + (y1 - y0) * share)
                h, w = face.head.shape[:2]
                frame[y : y + h, x : x + w] = face.head[: height - y, : width - x]
            yield frame


def call_sound(shots: Sequence[Shot], fps: int, sample_rate: int) -> Iterator[np.ndarray]:
    """One chunk of sound per second of each shot, the same length as its frames."""
    for shot in shots:
        seconds = int(round(shot.seconds * fps)) / fps
        left = seconds
        while left > 1e-9:
            part = min(1.0, left)
            yield tone(part, sample_rate, shot.freq or 440.0, silent=shot.freq is None)
            left -= part


def call_video(folder: Path, shots: Sequence[Shot], name: str = "call.mp4", size: tuple[int, int] = (320, 240),
               fps: int = 10, audio: bool = True, sample_rate: int = 16_000) -> Path:
    """Encode the call; ``audio=False`` leaves out the sound track."""
    sound = call_sound(shots, fps, sample_rate) if audio else None
    return write_video(Path(folder) / name, call_frames(shots, size, fps), fps, size, sound, sample_rate)
