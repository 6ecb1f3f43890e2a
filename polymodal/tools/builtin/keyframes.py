"""Keyframes: a video's frames streamed once, kept only where the picture changes.

A video is never held in memory. Frames are decoded one at a time with PyAV; every
``scan_interval`` seconds the frame is shrunk to a tiny thumbnail and compared with the last kept
frame's thumbnail (mean absolute difference of the pixels, 0..1). A frame becomes a keyframe when
the picture changed enough and ``min_interval`` has passed since the last one, or when
``max_interval`` passed with no change (a static talk still gets a frame now and then). Only the
keyframe images leave this module, one at a time, so peak memory does not grow with the video's
length.

A decoder error *after* the first frame does not lose what was found: the sampler stops and
records where (``Sampling.stopped_at``), so the caller can say "decoding stopped at 0:42".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from PIL import Image

from polymodal.errors import AttachmentError, MediaLimitError
from polymodal.media import Attachment, Modality

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

_THUMB = (32, 18)  # the scene distance is computed on this many pixels: cheap and blind to noise


@dataclass(frozen=True)
class KeyframeSettings:
    """How keyframes are picked; the summarizer fills this from its own fields."""

    threshold: float = 0.12
    """Mean absolute pixel difference (0..1) to the last keyframe that counts as a scene change."""
    min_interval: float = 1.0
    """Seconds that must pass between two keyframes, however much the picture changes."""
    max_interval: float = 30.0
    """Seconds after which a frame is kept even if nothing changed."""
    scan_interval: float = 0.1
    """Seconds between frames that are compared at all (the rest are decoded and dropped)."""
    max_keyframes: int = 64
    """More keyframes than this is a MediaLimitError (each one costs a caption)."""
    max_side: int = 768
    """Keyframe images are shrunk so their longer side is at most this (captioners resize anyway)."""


@dataclass
class Keyframe:
    """One kept frame: its time in seconds, the image, and how different it was from the last one."""

    time: float
    image: Image.Image
    change: float


@dataclass
class Sampling:
    """What a scan saw, filled in while :func:`iter_keyframes` runs."""

    frames_scanned: int = 0
    duration: float = 0.0
    """Time of the last decoded frame (seconds)."""
    stopped_at: float | None = None
    """Set when decoding failed part-way: the time of the last good frame."""
    stop_reason: str | None = None
    notes: list[str] = field(default_factory=list)


def iter_keyframes(
    video: Attachment,
    settings: KeyframeSettings,
    sampling: Sampling,
    *,
    max_seconds: float | None = None,
    limit_hint: str = "KeyframeSettings(max_keyframes=...)",
    duration_hint: str = "a larger max_seconds",
) -> Iterator[Keyframe]:
    """Stream ``video`` and yield its keyframes in time order.

    Raises:
        AttachmentError: no video stream, or not a single frame decodes.
        MediaLimitError: more than ``settings.max_keyframes`` keyframes, or decoded frames past
            ``max_seconds`` (a header can lie about the duration).
    """
    if video.kind is not Modality.VIDEO:
        raise AttachmentError(video.name, f"is {video.kind.value}, not a video")
    kept = 0
    last_thumb: np.ndarray | None = None
    last_kept = last_scanned = -float("inf")
    for time, frame in iter_frames(video, sampling):
        if max_seconds is not None and time > max_seconds:
            msg = (f"runs past {max_seconds:g} s of video, the summarizer's duration limit "
                   f"(raise it with {duration_hint})")
            raise MediaLimitError(video.name, msg)
        if time - last_scanned < settings.scan_interval - 1e-6:
            continue
        last_scanned = time
        thumb = _thumbnail(frame)
        change = 1.0 if last_thumb is None else float(np.abs(thumb - last_thumb).mean())
        since = time - last_kept
        if not (since >= settings.max_interval or (change >= settings.threshold and since >= settings.min_interval)):
            continue
        kept += 1
        if kept > settings.max_keyframes:
            msg = (f"has more than {settings.max_keyframes} keyframes (scene changes); raise {limit_hint} "
                   "or the scene threshold/min_interval to caption fewer frames")
            raise MediaLimitError(video.name, msg)
        last_thumb, last_kept = thumb, time
        yield Keyframe(time=time, image=_image(frame, settings.max_side), change=min(change, 1.0))


def iter_frames(video: Attachment, sampling: Sampling) -> Iterator[tuple[float, Any]]:
    """(time, PyAV frame) for every decoded frame, streamed; a mid-stream error ends it and is recorded.

    Raises:
        AttachmentError: no video stream, or not a single frame decodes.
    """
    with video.open_av() as container:
        if not container.streams.video:
            raise AttachmentError(video.name, "has no video stream (only sound?): give it to the transcriber")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = container.decode(stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except (av.FFmpegError, OSError, ValueError, EOFError) as exc:  # a broken tail of the file
                reason = " ".join(str(exc).split())[:160] or type(exc).__name__
                if sampling.frames_scanned == 0:
                    raise AttachmentError(video.name, f"cannot decode video ({reason})") from exc
                sampling.stopped_at, sampling.stop_reason = sampling.duration, reason
                return
            time = float(frame.time) if frame.time is not None else sampling.duration
            sampling.frames_scanned += 1
            sampling.duration = max(sampling.duration, time)
            yield time, frame
    if sampling.frames_scanned == 0:
        raise AttachmentError(video.name, "has a video stream with no decodable frames")
    declared = video.duration or 0.0
    if declared - sampling.duration > max(1.0, 0.05 * declared):  # a cut file often ends without an error
        sampling.stopped_at = sampling.duration
        sampling.stop_reason = f"the file ends early: frames stop at {sampling.duration:.1f} s of {declared:.1f} s"


def frames_at(video: Attachment, times: Iterable[float], sampling: Sampling) -> Iterator[tuple[float, Any]]:
    """(time asked, PyAV frame shown then) for each of the ascending ``times``, in one streamed pass.

    The frame shown at ``t`` is the last one starting at or before ``t`` (the first frame for a
    ``t`` before it). ``times`` is read lazily, so it may be endless: the stream ends the pass.
    Times past the last frame by more than one frame's duration get nothing.
    """
    wanted = iter(times)
    target = next(wanted, None)
    previous: tuple[float, Any] | None = None
    step = 0.0
    for time, frame in iter_frames(video, sampling):
        while target is not None and time > target + 1e-6:
            yield target, (previous or (time, frame))[1]
            target = next(wanted, None)
        if previous is not None:
            step = max(step, time - previous[0])
        previous = (time, frame)
        if target is None:
            return
    while target is not None and previous is not None and target < previous[0] + max(step, 1e-3):
        yield target, previous[1]
        target = next(wanted, None)


def _thumbnail(frame: Any) -> np.ndarray:
    """A tiny RGB copy as floats in 0..1; swscale shrinks it without touching the full picture."""
    small = frame.reformat(width=_THUMB[0], height=_THUMB[1], format="rgb24").to_ndarray()
    return np.asarray(small, dtype=np.float32) / 255.0


def _image(frame: Any, max_side: int) -> Image.Image:
    image = frame.to_image()
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
    return image


def grab_frame(video: Attachment, at: float, max_side: int = 768) -> tuple[float, Image.Image]:
    """The frame shown at ``at`` seconds: seek to the keyframe before it, then decode forward.

    Returns the frame's actual time and its image.

    Raises:
        AttachmentError: ``at`` is outside the video, or the video cannot be decoded there.
    """
    if at < 0 or (video.duration is not None and at > video.duration + 0.05):
        length = f"{video.duration:.1f} s" if video.duration is not None else "of unknown length"
        raise AttachmentError(video.name, f"has no frame at {at:g} s (the video is {length})")
    with video.open_av() as container:
        if not container.streams.video:
            raise AttachmentError(video.name, "has no video stream")
        stream = container.streams.video[0]
        best: tuple[float, Any] | None = None
        try:
            if at > 0 and stream.time_base is not None:
                container.seek(int(at / stream.time_base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                time = float(frame.time or 0.0)
                if best is not None and time > at + 1e-6:
                    break
                best = (time, frame)
        except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
            if best is None:
                reason = " ".join(str(exc).split())[:160] or type(exc).__name__
                raise AttachmentError(video.name, f"cannot decode a frame at {at:g} s ({reason})") from exc
        if best is None:
            raise AttachmentError(video.name, f"has no decodable frame at {at:g} s")
        return best[0], _image(best[1], max_side)


def hms(seconds: float) -> str:
    """``00:01:23``: the timeline's timestamp format (whole seconds, rounded down)."""
    whole = max(0, int(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def parse_time(value: object) -> float:
    """Seconds from a number or a clock string ("42", "0:42", "1:02:03", "42s").

    Raises:
        ValueError: not a time (pydantic turns it into a validation error the planner sees).
    """
    if isinstance(value, bool):
        raise ValueError("expected seconds or a time like 0:42")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected seconds or a time like 0:42")
    text = value.strip().lower().removesuffix("s").strip()
    parts = text.split(":")
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"not a time: {value!r} (use seconds or h:mm:ss)")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"not a time: {value!r} (use seconds or h:mm:ss)") from None
    seconds = 0.0
    for number in numbers:
        seconds = seconds * 60 + number
    return seconds
