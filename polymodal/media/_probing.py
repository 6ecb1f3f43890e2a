"""Probing: open a sniffed file with the forced decoder, check its caps and decode a first frame."""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import av
from PIL import Image, ImageOps

from polymodal.errors import AttachmentError, MediaLimitError
from polymodal.media._kinds import (
    _ATTACHED_PIC,
    _AV_DEMUXERS,
    _IMAGE_DECODERS,
    _PROBE_PACKETS,
    MediaLimits,
    Modality,
    _decoding,
)
from polymodal.media._sniffing import _looks_like, _sniff

__all__: list[str] = []


@dataclass(frozen=True)
class _Probe:
    """What validation learned about a file; becomes the Attachment's public fields."""

    kind: Modality
    mime_type: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    has_audio: bool | None = None


class _ProbeCache:
    """What probing found for bytes already probed, by (sha256, limits): the same bytes under the same
    caps give the same answer, so it is not worked out again.

    A client of ``polymodal serve`` that keeps its own history (as OpenAI clients do) sends every
    earlier photo and voice note again with each turn; probing a 640x480 JPEG fully decodes it (4 ms),
    hashing it takes a tenth of that. Only successes are kept, at most ``size`` (least recently used
    go first); a failure is worked out again, with its message naming the file as given.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._found: OrderedDict[tuple[str, MediaLimits], _Probe] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, MediaLimits]) -> _Probe | None:
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
            return found

    def put(self, key: tuple[str, MediaLimits], probe: _Probe) -> None:
        with self._lock:
            self._found[key] = probe
            while len(self._found) > self.size:
                self._found.popitem(last=False)


_PROBED = _ProbeCache()

Opener = Callable[[], IO[bytes]]
_Stamp = tuple[int, int, int, int, int]


def _probe(opener: Opener, head: bytes, source: str, limits: MediaLimits) -> _Probe:
    """Sniff, then validate cheaply but for real: caps first, then decode a first frame."""
    subtype = _sniff(head)
    if subtype is None:
        msg = f"not a supported image, audio or video file (looks like {_looks_like(head)})"
        raise AttachmentError(source, msg)
    if subtype in _IMAGE_DECODERS:
        return _probe_image(opener, subtype, source, limits)
    return _probe_av(opener, subtype, source, limits)


def _pixel_cap(source: str, width: int, height: int, limits: MediaLimits) -> None:
    if width * height > limits.max_pixels:
        msg = (f"is {width}x{height} = {width * height:,} pixels, over the {limits.max_pixels:,} pixel cap "
               "(raise it with MediaLimits(max_pixels=...))")
        raise MediaLimitError(source, msg)


@contextmanager
def _open_image(fp: IO[bytes], subtype: str, source: str, limits: MediaLimits) -> Iterator[Image.Image]:
    """Image.open plus our pixel cap, checked from the header before anything is decoded.

    Pillow's own bomb guard only warns below 2x its limit; we silence that (and Pillow's other
    warnings about malformed files) and apply our cap, which is lower by default. Above Pillow's
    hard limit, Image.open refuses before we see the size.
    """
    with warnings.catch_warnings():  # hostile files make Pillow warn a lot; the errors are what count
        warnings.simplefilter("ignore")
        try:
            im = Image.open(fp, formats=[_IMAGE_DECODERS[subtype]])
        except Image.DecompressionBombError as exc:
            msg = (f"declares over {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels, refused before decoding "
                   "(raise MediaLimits(max_pixels=...) and PIL.Image.MAX_IMAGE_PIXELS to allow it)")
            raise MediaLimitError(source, msg) from exc
        with im:
            _pixel_cap(source, *im.size, limits)
            yield im


def _probe_image(opener: Opener, subtype: str, source: str, limits: MediaLimits) -> _Probe:
    with _decoding(source, "cannot decode image"), opener() as fp, \
            _open_image(fp, subtype, source, limits) as im:
        im.load()  # a full decode now, so a truncated file fails here and not inside a tool
        width, height = im.size
        if _orientation(im) in (5, 6, 7, 8):  # turned by 90 degrees: report the size image() gives
            width, height = height, width
    return _Probe(Modality.IMAGE, f"image/{subtype}", width=width, height=height)


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation; a broken EXIF block must not reject otherwise good pixels."""
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _upright(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im) if _orientation(im) != 1 else im
    except Exception:  # same reason as _orientation: a bad EXIF block only costs the rotation
        return im


def _main_video(container: Any) -> Any:
    """The first real video stream; cover art in MP3/M4A/FLAC is a video stream too."""
    for stream in container.streams.video:
        if not int(getattr(stream, "disposition", 0) or 0) & _ATTACHED_PIC:
            return stream
    return None


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration is not None else None


def _duration_cap(source: str, kind: Modality, seconds: float, limits: MediaLimits) -> None:
    cap = limits.max_video_seconds if kind is Modality.VIDEO else limits.max_audio_seconds
    if seconds > cap:
        msg = (f"is {seconds:.1f} s long, over the {cap:g} s cap for {kind.value} "
               f"(raise it with MediaLimits(max_{kind.value}_seconds=...))")
        raise MediaLimitError(source, msg)


def _decodes_a_frame(container: Any, stream: Any) -> bool:
    """Decode up to the first frame, so garbage and corrupt streams fail at attach time."""
    for count, packet in enumerate(container.demux(stream)):
        if packet.decode():
            return True
        if count >= _PROBE_PACKETS:
            return False
    return False


def _probe_av(opener: Opener, subtype: str, source: str, limits: MediaLimits) -> _Probe:
    with _decoding(source, "cannot decode media"), opener() as fp, \
            av.open(fp, format=_AV_DEMUXERS[subtype]) as container:
        video, audio = _main_video(container), next(iter(container.streams.audio), None)
        stream = video or audio
        if stream is None:
            raise AttachmentError(source, "has no audio or video stream")
        kind = Modality.VIDEO if video is not None else Modality.AUDIO
        duration = _duration(container, stream)
        _duration_cap(source, kind, duration or 0.0, limits)
        width = height = None
        if video is not None:
            width, height = video.codec_context.width, video.codec_context.height
            _pixel_cap(source, width, height, limits)
        if not _decodes_a_frame(container, stream):
            if video is not None or duration:
                raise AttachmentError(source, f"has no decodable {stream.type} frames")
            duration = 0.0  # an empty audio file is valid: audio() gives an empty array
    if kind is Modality.AUDIO and subtype == "quicktime":
        subtype = "mp4"
    return _Probe(kind, f"{kind.value}/{subtype}", width=width, height=height, duration=duration,
                  has_audio=(audio is not None) if video is not None else None)


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB for models; transparency goes on white, since a plain convert turns it black."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")
