"""Faces in pictures: find them, crop them, and follow each one across the samples of a video.

An emotion classifier trained on faces sees mostly the room when it is given a whole video-call
frame, so the emotion recognizer classifies face crops instead. Detection uses OpenCV's Haar
cascade for frontal faces, whose model ships inside the ``opencv-python-headless`` wheel (the
``faces`` extra; OpenCV 5 dropped ``CascadeClassifier``, hence ``<5``): offline, CPU-only, about
10 ms for a 640x360 frame. It finds upright, roughly frontal faces of at least ``min_size``
pixels; profile faces, strongly tilted heads and tiny faces are missed. Any object with a
``detect(rgb) -> list[FaceBox]`` method can replace it (a better detector when one is installed).

Several faces in one frame are kept apart by :class:`FaceTracker`, a greedy tracker by position:
each new box joins the nearest track whose last box was close enough and recent enough, or
starts a new track (``face 1``, ``face 2``... in order of first appearance).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from polymodal.errors import ConfigurationError, MissingDependencyError

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools


@dataclass(frozen=True)
class FaceBox:
    """A face's box in the pixels of the picture it was found in."""

    x: int
    y: int
    w: int
    h: int

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    @property
    def size(self) -> float:
        return float(max(self.w, self.h))


@runtime_checkable
class FaceDetector(Protocol):
    """What the emotion recognizer needs from a face detector."""

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Boxes of the faces in an (h, w, 3) uint8 RGB picture, largest first."""
        ...


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError("face detection", "opencv-python-headless", "faces") from exc
    if not hasattr(cv2, "CascadeClassifier"):  # OpenCV 5 removed the Haar cascades
        raise MissingDependencyError("face detection (Haar cascades, OpenCV 4.x)", "opencv-python-headless<5",
                                     "faces")
    return cv2


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade, run on a grey copy shrunk to ``scan_side`` pixels at most.

    Args:
        scan_side: the picture's longer side is shrunk to this before scanning (cost grows with
            the pixels; boxes are mapped back to the full picture).
        min_size: smallest face found, in pixels of the shrunk picture.
        scale_factor: step between the scales scanned (smaller: slower, finds more sizes).
        min_neighbors: overlapping hits needed to keep a box (higher: fewer false faces).
        cascade: file name inside ``cv2.data.haarcascades``, or a path to a cascade XML.
    """

    def __init__(self, scan_side: int = 640, min_size: int = 24, scale_factor: float = 1.1,
                 min_neighbors: int = 5, cascade: str = "haarcascade_frontalface_default.xml") -> None:
        self.scan_side = int(scan_side)
        self.min_size = int(min_size)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.cascade = cascade
        self._local = threading.local()  # a CascadeClassifier must not run on two threads at once

    def __getstate__(self) -> dict[str, Any]:
        """Settings only: the per-thread classifiers stay behind (a tool sent to a worker process or a
        Ray actor is pickled, and a ``threading.local`` cannot be)."""
        return {key: value for key, value in self.__dict__.items() if key != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def load(self) -> HaarFaceDetector:
        """Load the cascade now (on this thread), so a missing OpenCV fails early; returns self."""
        self._classifier()
        return self

    def _classifier(self) -> Any:
        classifier = getattr(self._local, "classifier", None)
        if classifier is None:
            cv2 = _cv2()
            path = self.cascade if "/" in self.cascade else cv2.data.haarcascades + self.cascade
            classifier = cv2.CascadeClassifier(path)
            if classifier.empty():
                msg = f"face detection: cannot load the Haar cascade {path!r}"
                raise ConfigurationError(msg)
            self._local.classifier = classifier
        return classifier

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        cv2 = _cv2()
        classifier = self._classifier()
        height, width = rgb.shape[:2]
        scale = min(1.0, self.scan_side / max(height, width))
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            grey = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))),
                              interpolation=cv2.INTER_AREA)
        found = classifier.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                            minSize=(self.min_size, self.min_size))
        boxes = [FaceBox(round(x / scale), round(y / scale), round(w / scale), round(h / scale))
                 for x, y, w, h in (found if len(found) else [])]
        return sorted(boxes, key=lambda b: -b.w * b.h)


def crop_face(image: Image.Image, box: FaceBox, margin: float = 0.2) -> Image.Image:
    """The face with ``margin`` (a fraction of its size) added on each side, clipped to the picture."""
    pad_x, pad_y = box.w * margin, box.h * margin
    left, top = max(0, round(box.x - pad_x)), max(0, round(box.y - pad_y))
    right, bottom = min(image.width, round(box.x + box.w + pad_x)), min(image.height, round(box.y + box.h + pad_y))
    return image.crop((left, top, right, bottom))


@dataclass
class _Track:
    name: str
    box: FaceBox
    seen: float


@dataclass
class FaceTracker:
    """Gives each face box a stable name across samples, by position.

    Args:
        max_jump: how far (in face sizes) a face may move between two samples and stay the same track.
        max_gap: seconds a track may go unseen before a face near it counts as a new person.
    """

    max_jump: float = 1.5
    max_gap: float = 10.0
    _tracks: list[_Track] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Tracks started so far (faces told apart)."""
        return len(self._tracks)

    def update(self, time: float, boxes: Sequence[FaceBox]) -> list[str]:
        """The track name of each box found at ``time`` (same order as ``boxes``)."""
        live = [t for t in self._tracks if time - t.seen <= self.max_gap]
        pairs = sorted(
            (_distance(track.box, box), ti, bi)
            for ti, track in enumerate(live) for bi, box in enumerate(boxes)
        )
        names: list[str | None] = [None] * len(boxes)
        used: set[int] = set()
        for distance, ti, bi in pairs:  # greedy: closest pairs first, each track and box once
            if distance > self.max_jump or ti in used or names[bi] is not None:
                continue
            used.add(ti)
            names[bi] = live[ti].name
            live[ti].box, live[ti].seen = boxes[bi], time
        for bi, box in enumerate(boxes):
            if names[bi] is None:
                track = _Track(f"face {len(self._tracks) + 1}", box, time)
                self._tracks.append(track)
                names[bi] = track.name
        return [name for name in names if name is not None]


def _distance(a: FaceBox, b: FaceBox) -> float:
    """Centre distance in face sizes, plus a penalty when the sizes differ a lot (another person)."""
    (ax, ay), (bx, by) = a.centre, b.centre
    size = max(1.0, (a.size + b.size) / 2)
    ratio = max(a.size, b.size) / max(1.0, min(a.size, b.size))
    return float(np.hypot(ax - bx, ay - by)) / size + max(0.0, ratio - 1.5)
