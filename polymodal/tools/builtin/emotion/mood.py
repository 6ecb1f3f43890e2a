"""The mood timeline: a call cut into windows, each window's emotions, merged into spans and told in words.

Pure bookkeeping, no models: the emotion recognizer fills one :class:`MoodWindow` per window
(the voice's distribution, each tracked face's, and the fused one), and this module turns the
windows into :class:`MoodSpan` rows — one per person or signal (``fused``, ``voice``, ``face 1``,
``faces`` for "no face") and run of equal labels, adjacent equal windows merged — and into the
sentence a person reads: "calm until 03:10, then frustrated".

Windows lie on a fixed grid of ``window`` seconds from the start, so their times are round
numbers; the last one takes the remainder (a remainder shorter than half a window joins the
window before it), so no window is a sliver.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, Field

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

FUSED, VOICE, FACES = "fused", "voice", "faces"
"""Who a span is about, besides the tracked faces (``face 1``, ``face 2``...)."""
NO_FACE, NO_VOICE, NO_SIGNAL = "no face", "no voice", "no face or voice"
"""Labels of spans where there was nothing to classify (their probabilities are empty)."""

Fusion = Literal["audio", "face", "average", "head"]


class Mood(BaseModel):
    """A label with its distribution (most likely first)."""

    label: str
    probabilities: dict[str, float]


class MoodWindow(BaseModel):
    """One window of the call: what the voice and each face showed, and the two fused."""

    start: float
    end: float
    voice: dict[str, float] | None = None
    """The voice model's distribution on this window's sound; None: no sound track, or silent."""
    faces: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Each tracked face's distribution, averaged over its crops in this window; empty: no face."""
    fused: dict[str, float] | None = None
    """Voice and faces fused (late fusion or the trained head); None when neither was there."""
    fusion: Fusion | None = None
    """How ``fused`` was made."""
    frames: int = 0
    """Frames sampled in this window."""

    @property
    def label(self) -> str:
        """The fused label, or :data:`NO_SIGNAL`."""
        return _top(self.fused) if self.fused else NO_SIGNAL


class MoodSpan(BaseModel):
    """A run of adjacent windows where one person or signal kept one label: a timeline row."""

    start: float
    end: float
    who: str
    """``fused``, ``voice``, ``face 1``, ``face 2``... or ``faces`` (for "no face" rows)."""
    label: str
    probabilities: dict[str, float] = Field(default_factory=dict)
    """The windows' distributions averaged by duration; empty for "no face"/"no voice" rows."""
    windows: int = 1
    """How many windows were merged into this span."""

    @property
    def known(self) -> bool:
        """False for "no face"/"no voice"/"no face or voice" rows."""
        return bool(self.probabilities)


class WindowGrid(BaseModel):
    """Where windows start and end: every ``window`` seconds, the last one taking the remainder."""

    window: float = Field(gt=0)
    duration: float | None = None
    """The length the file declares (None: unknown, every window is ``window`` long)."""

    @property
    def planned(self) -> int:
        """Windows the declared duration needs (a remainder under half a window joins the last)."""
        if not self.duration or self.duration <= 0:
            return 1
        return max(1, int(self.duration / self.window + 0.5))

    def bounds(self, index: int) -> tuple[float, float]:
        """(start, end) of window ``index``; past the planned ones (the file ran longer) they are nominal."""
        last = self.planned - 1
        if not self.duration or index < last:
            return index * self.window, (index + 1) * self.window
        end = max(self.duration, last * self.window + 1e-3)  # the last planned window takes the remainder
        if index == last:
            return last * self.window, end
        start = end + (index - last - 1) * self.window
        return start, start + self.window

    def sample_times(self, frames: int) -> Iterable[float]:
        """``frames`` times per window at the centres of equal slices, window after window, endlessly."""
        index = 0
        while True:
            start, end = self.bounds(index)
            yield from (start + (i + 0.5) * (end - start) / frames for i in range(frames))
            index += 1


def mean_distribution(parts: Iterable[tuple[dict[str, float], float]]) -> dict[str, float]:
    """Weighted mean of label distributions over the union of labels, most likely first (sums to 1)."""
    total: dict[str, float] = {}
    weight_sum = 0.0
    for dist, weight in parts:
        weight_sum += weight
        for label, p in dist.items():
            total[label] = total.get(label, 0.0) + weight * p
    norm = sum(total.values()) or 1.0
    return dict(sorted(((k, v / norm) for k, v in total.items()), key=lambda kv: -kv[1])) if weight_sum else {}


def merge_windows(windows: Sequence[MoodWindow], *, voice: bool, faces: bool) -> list[MoodSpan]:
    """The timeline rows: per who, adjacent windows with the same label merged.

    Args:
        windows: in time order.
        voice: whether the input had a voice at all (else no ``voice`` rows, not "no voice" everywhere).
        faces: whether the input had pictures to find faces in (else no ``faces``/``face N`` rows).
    """
    open_spans: dict[str, tuple[MoodSpan, list[tuple[dict[str, float], float]]]] = {}
    done: list[MoodSpan] = []
    for window in windows:
        for who, dist, empty in _rows(window, voice=voice, faces=faces):
            label = _top(dist) if dist else empty
            current = open_spans.get(who)
            if current is not None and current[0].label == label and abs(current[0].end - window.start) < 1e-6:
                current[0].end, current[0].windows = window.end, current[0].windows + 1
                current[1].append((dist or {}, _weight(window)))
                continue
            if current is not None:
                done.append(_closed(*current))
            open_spans[who] = (MoodSpan(start=window.start, end=window.end, who=who, label=label),
                               [(dist or {}, _weight(window))])
        for who in [w for w, (span, _) in open_spans.items() if span.end < window.end - 1e-6]:
            done.append(_closed(*open_spans.pop(who)))  # a face that left: its span ends where it was last seen
    done.extend(_closed(*span) for span in open_spans.values())
    order = {FUSED: 0, VOICE: 1, FACES: 2}
    return sorted(done, key=lambda s: (s.start, order.get(s.who, 3), _face_number(s.who)))


def _rows(window: MoodWindow, *, voice: bool, faces: bool) -> list[tuple[str, dict[str, float] | None, str]]:
    rows: list[tuple[str, dict[str, float] | None, str]] = [(FUSED, window.fused, NO_SIGNAL)]
    if voice:
        rows.append((VOICE, window.voice, NO_VOICE))
    if faces and not window.faces:
        rows.append((FACES, None, NO_FACE))
    rows.extend((name, dist, NO_FACE) for name, dist in window.faces.items())
    return rows


def _closed(span: MoodSpan, parts: list[tuple[dict[str, float], float]]) -> MoodSpan:
    if span.label not in (NO_FACE, NO_VOICE, NO_SIGNAL):
        span.probabilities = mean_distribution(parts)
    return span


def describe_changes(spans: Sequence[MoodSpan], who: str = FUSED) -> str:
    """``calm until 03:10, then frustrated`` for one who's rows; ``calm throughout`` without a change."""
    rows = [span for span in spans if span.who == who]
    if not rows:
        return ""
    if len(rows) == 1:
        return f"{rows[0].label} throughout"
    parts = []
    for i, span in enumerate(rows):
        gap = i > 0 and span.start > rows[i - 1].end + 1e-6
        lead = "" if i == 0 else (f", then (from {clock(span.start)}) " if gap else ", then ")
        tail = f" until {clock(span.end)}" if i < len(rows) - 1 else ""
        parts.append(f"{lead}{span.label}{tail}")
    return "".join(parts)


def clock(seconds: float) -> str:
    """``03:10`` under an hour, ``1:03:10`` from one hour on (whole seconds, rounded down)."""
    whole = max(0, int(seconds + 1e-6))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def _top(dist: dict[str, float]) -> str:
    return max(dist, key=dist.__getitem__)


def _weight(window: MoodWindow) -> float:
    return max(window.end - window.start, 1e-3)  # a photo is a window of no length: it still counts


def _face_number(who: str) -> int:
    tail = who.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else 0
