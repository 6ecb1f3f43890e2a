"""Attachments: untrusted media files turned into typed, validated, lazily decoded objects.

Every file a user hands us is hostile until proven otherwise (RELIABILITY.md, A1-A10). An
:class:`Attachment` is only built after its path passed the allowed-roots check, its kind was
sniffed from the bytes (never the extension), its size, pixel count and duration were checked
against :class:`MediaLimits`, and a first frame decoded. Tools then get decoded content on demand
(``image()``, ``audio()``, ``open_av()``), decoded once and cached, while the planner only ever
sees ``describe()``: ``image_1: image/png 640x480 (photo.png)``.

Every Pillow or PyAV failure surfaces as :class:`AttachmentError` (or :class:`MediaLimitError`
for caps) naming the file, so no decoder traceback reaches an answer.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import io
import itertools
import os
import stat
import struct
import threading
import time
import unicodedata
import urllib.parse
import uuid
import warnings
import wave
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from polymodal.errors import AttachmentError, MediaLimitError

__all__ = ["DEFAULT_LIMITS", "Attachment", "MediaLimits", "Modality"]


class Modality(str, Enum):
    """What a piece of content is; attachments are IMAGE, AUDIO or VIDEO."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"


class MediaLimits(BaseModel):
    """Caps applied to every attachment; each error message names the field that raises its cap."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    max_bytes: int = Field(default=512 * 1024**2, gt=0)
    """Largest file accepted, checked from ``os.stat`` before reading."""
    max_pixels: int = Field(default=64_000_000, gt=0)
    """Decompression-bomb guard: width x height from the header, checked before decoding."""
    max_audio_seconds: float = Field(default=4 * 3600, gt=0)
    """Longest audio accepted."""
    max_video_seconds: float = Field(default=4 * 3600, gt=0)
    """Longest video accepted."""
    allowed_roots: tuple[Path, ...] | None = None
    """When set, paths must resolve (symlinks followed) inside one of these folders."""
    allow_urls: bool = False
    """URL attachments; off by default (and fetching is not implemented yet)."""


DEFAULT_LIMITS = MediaLimits()

_HEAD = 4096  # enough for every magic number and the WebM doctype
_MAX_NAME = 200
_PROBE_PACKETS = 256  # a decoder must produce a frame within this many packets (B-frame delay)
_ATTACHED_PIC = 0x0400  # AV_DISPOSITION_ATTACHED_PIC: cover art is not a video
# The decoder is forced from the sniffed type, so a crafted file cannot steer Pillow or FFmpeg
# into another parser (FFmpeg's hls/concat demuxers would open other files or URLs).
_IMAGE_DECODERS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP",
                   "tiff": "TIFF", "avif": "AVIF"}
_AV_DEMUXERS = {"wav": "wav", "flac": "flac", "ogg": "ogg", "mpeg": "mp3", "aac": "aac", "mp4": "mov",
                "quicktime": "mov", "webm": "matroska", "x-matroska": "matroska", "x-msvideo": "avi"}
_PREFIXES = [(b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"),
             (b"GIF89a", "gif"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"fLaC", "flac"),
             (b"OggS", "ogg"), (b"ID3", "mpeg")]
_LOOKS_LIKE = [(b"\x7fELF", "an ELF executable"), (b"MZ", "a Windows executable"),
               (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"),
               (b"<!doctype html", "HTML"), (b"<html", "HTML"), (b"<svg", "SVG (not supported)"),
               (b"<?xml", "XML")]


def _safe_name(text: str) -> str:
    """Escape what could forge log lines or reorder a terminal (NUL, controls, RTL overrides); bound it."""
    out = "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        if unicodedata.category(c) in {"Cc", "Cf", "Cs", "Zl", "Zp"} else c
        for c in text
    )
    return out if len(out) <= _MAX_NAME else out[: _MAX_NAME - 1] + "…"


def _short(exc: BaseException) -> str:
    """A decoder's one-line reason, without errno prefixes or file names."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return _safe_name(text.splitlines()[0] if text.strip() else type(exc).__name__)[:160]


@contextmanager
def _decoding(source: str, what: str) -> Iterator[None]:
    """Turn any decoder exception into an AttachmentError naming the file.

    Pillow and FFmpeg raise whatever they like on hostile input (OSError, SyntaxError,
    struct.error, IndexError, av.FFmpegError...), so a narrow except would leak tracebacks.
    """
    try:
        yield
    except (AttachmentError, MemoryError):
        raise
    except Exception as exc:
        raise AttachmentError(source, f"{what} ({_short(exc)})") from exc


def _sniff(head: bytes) -> str | None:
    """The mime subtype implied by the magic bytes, or None; the extension is never consulted."""
    for prefix, subtype in _PREFIXES:
        if head.startswith(prefix):
            return subtype
    if head[:4] in (b"RIFF", b"RF64") and len(head) >= 12:
        return {b"WAVE": "wav", b"WEBP": "webp", b"AVI ": "x-msvideo"}.get(head[8:12])
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in {
        12, 40, 52, 56, 64, 108, 124}:  # "BM" alone is too weak: check the DIB header size
        return "bmp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        return None if brand in (b"heic", b"heix", b"mif1", b"msf1") else (
            "quicktime" if brand == b"qt  " else "mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML
        return "webm" if b"webm" in head[:64] else "x-matroska"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MPEG audio frame sync
        return "mpeg" if head[1] & 0x06 else ("aac" if head[1] & 0xF6 == 0xF0 else None)
    return None


def _looks_like(head: bytes) -> str:
    """A guess for the refusal message, so "photo.png" holding HTML says so."""
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1"):
        return "a HEIC image (not supported: convert it to JPEG or PNG)"
    lowered = head.lstrip().lower()
    for prefix, what in _LOOKS_LIKE:
        if head.startswith(prefix) or lowered.startswith(prefix):
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut by the head is still text
        text = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else ""
    if text and all(c.isprintable() or c in "\t\r\n\f" for c in text):
        return "text"
    return "unrecognised binary data"


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


def _b64decode(text: object, source: str, limits: MediaLimits) -> bytes:
    """Base64 as LLM APIs send it: maybe line-wrapped, URL-safe or unpadded; capped before decoding."""
    if not isinstance(text, str):
        raise AttachmentError(source, "base64 data must be a string")
    compact = "".join(text.split()).replace("-", "+").replace("_", "/")
    if len(compact) * 3 // 4 > limits.max_bytes:
        msg = f"is over the {limits.max_bytes:,} byte cap (raise it with MediaLimits(max_bytes=...))"
        raise MediaLimitError(source, msg)
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttachmentError(source, "invalid base64 data") from exc


def _redact_url(url: str) -> str:
    """Scheme, host and path only: credentials and tokens live in userinfo and the query (T7)."""
    try:
        parts = urllib.parse.urlsplit(url)
        return _safe_name(f"{parts.scheme}://{parts.hostname or ''}{parts.path}")
    except ValueError:
        return "<url>"


def _url_bytes(url: object, source: str, limits: MediaLimits) -> bytes:
    if not isinstance(url, str):
        raise AttachmentError(source, "the block's url must be a string")
    if url[:5].lower() == "data:":
        header, comma, payload = url.partition(",")
        if not comma:
            raise AttachmentError(source, "malformed data: URL (no comma)")
        if header.lower().endswith(";base64"):
            return _b64decode(payload, source, limits)
        return urllib.parse.unquote_to_bytes(payload)
    if not limits.allow_urls:
        msg = ("URL attachments are off by default (see MediaLimits.allow_urls); "
               "download the file and attach it by path or as base64")
        raise AttachmentError(_redact_url(url), msg)
    msg = "URL fetching is not implemented; download the file and attach it by path or as base64"
    raise AttachmentError(_redact_url(url), msg)


def _block_bytes(block: Mapping[str, Any], source: str, limits: MediaLimits) -> bytes:
    """The payload of a LangChain v1/v0, OpenAI or Anthropic content block."""
    btype = block.get("type")
    if btype == "image_url":  # OpenAI: {"image_url": {"url": ...}} or {"image_url": "..."}
        ref = block.get("image_url")
        return _url_bytes(ref.get("url") if isinstance(ref, Mapping) else ref, source, limits)
    if btype == "input_audio":
        ref = block.get("input_audio")
        return _b64decode(ref.get("data") if isinstance(ref, Mapping) else None, source, limits)
    if btype in ("image", "audio", "video", "file"):
        src = block.get("source")
        if "base64" in block:
            return _b64decode(block["base64"], source, limits)
        if block.get("source_type") == "base64":
            return _b64decode(block.get("data"), source, limits)
        if "url" in block:
            return _url_bytes(block["url"], source, limits)
        if isinstance(src, Mapping) and src.get("type") == "base64":  # Anthropic
            return _b64decode(src.get("data"), source, limits)
        if "file_id" in block or block.get("source_type") == "id":
            msg = "file_id references cannot be resolved here; attach the file itself"
            raise AttachmentError(source, msg)
    msg = f"unsupported content block (type={btype!r}); expected image, audio, video or file with base64 data"
    raise AttachmentError(source, msg)


class _Caches:
    """Decoded content shared by an attachment and its with_id copies; the lock avoids double decodes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.image: Image.Image | None = None
        self.audio: dict[int, np.ndarray] = {}
        self.stamp: _Stamp | None = None  # the checked file's identity, when it can be trusted (see _open)

    def __eq__(self, other: object) -> bool:  # caches are not identity: equal bytes, equal attachments
        return isinstance(other, _Caches)

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:  # locks do not pickle; caches are cheap to rebuild
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]


class Attachment(BaseModel):
    """One validated media file. Build it with the ``from_*`` classmethods or ``coerce``.

    Constructing it directly (or from JSON) skips validation and the allowed-roots check, so only
    do that with data polymodal itself serialised. JSON never carries the bytes: a deserialised
    attachment reads them back from ``path``, checked against ``sha256``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    id: str | None = None
    """Handle the planner uses ("image_1"); set by the conversation with ``with_id``."""
    kind: Modality
    """IMAGE, AUDIO or VIDEO, sniffed from the bytes, never from the extension."""
    mime_type: str
    """E.g. "image/png", "audio/wav", "video/mp4"."""
    name: str
    """File name for display, with control characters and RTL overrides escaped (A9)."""
    path: Path | None = None
    """Resolved path when the attachment came from a file; bytes are then read lazily."""
    size_bytes: int
    sha256: str
    """Hex digest of the bytes: the content identity."""
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    """Seconds, for audio and video."""
    has_audio: bool | None = None
    """For video: whether there is an audio track."""

    _data: bytes | None = PrivateAttr(default=None)
    _limits: MediaLimits = PrivateAttr(default=DEFAULT_LIMITS)
    _caches: _Caches = PrivateAttr(default_factory=_Caches)

    @field_validator("name", "id")
    @classmethod
    def _escape(cls, value: str | None) -> str | None:
        return None if value is None else _safe_name(value)

    @field_validator("kind")
    @classmethod
    def _media_only(cls, value: Modality) -> Modality:
        if value is Modality.TEXT:
            raise ValueError("an attachment is an image, audio or video")
        return value

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], limits: MediaLimits = DEFAULT_LIMITS) -> Attachment:
        """Validate and attach a file; its bytes stay on disk until needed."""
        given = Path(os.fsdecode(path))  # "~" stays literal: expanding it is the caller's decision
        source = _safe_name(str(given))
        resolved = _resolve_inside(given, source, limits)
        _check_file(resolved, source, limits)  # from stat, before any open: opening a device can act
        fp, before = _open_regular(resolved, source)
        with fp:  # hashed and probed through this one descriptor: what is checked is what is read
            _byte_cap(source, before.st_size, limits)
            digest, head, size = _hash_stream(fp, source, limits)
            probe = _probe(lambda: _reread(fp), head, source, limits)
            if _stamp_of(os.fstat(fp.fileno())) != _stamp_of(before) or size != before.st_size:
                raise AttachmentError(source, "changed while it was being attached")
        att = cls(name=given.name or source, path=resolved, size_bytes=size, sha256=digest, **vars(probe))
        att._limits, att._caches.stamp = limits, _settled(before)
        return att

    @classmethod
    def from_bytes(
        cls, data: bytes, name: str = "<bytes>", limits: MediaLimits = DEFAULT_LIMITS
    ) -> Attachment:
        """Validate and attach in-memory bytes."""
        source, data = _safe_name(name), bytes(data)
        _byte_cap(source, len(data), limits)
        if not data:
            raise AttachmentError(source, "is empty (0 bytes)")
        digest = hashlib.sha256(data).hexdigest()
        probe = _PROBED.get((digest, limits))
        if probe is None:
            probe = _probe(lambda: io.BytesIO(data), data[:_HEAD], source, limits)
            _PROBED.put((digest, limits), probe)
        att = cls(name=name, size_bytes=len(data), sha256=digest, **vars(probe))
        att._data, att._limits = data, limits
        return att

    @classmethod
    def from_image(cls, image: Image.Image, name: str = "<image>") -> Attachment:
        """Attach a PIL image (a generated one, say) as PNG."""
        buf = io.BytesIO()
        with _decoding(_safe_name(name), "cannot encode image as PNG"):
            png_ok = image.mode in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA")
            (image if png_ok else _to_rgb(image)).save(buf, format="PNG")
        return cls.from_bytes(buf.getvalue(), name)

    @classmethod
    def from_audio(cls, samples: np.ndarray, sample_rate: int, name: str = "<audio>") -> Attachment:
        """Attach samples as a 16-bit WAV: float in [-1, 1] or int16; 1-D mono or (frames, channels)."""
        source, arr = _safe_name(name), np.asarray(samples)
        rate = int(sample_rate) if isinstance(sample_rate, (int, float, np.number)) else 0
        # (channels, frames) is the usual mistake: more than 16 channels is not a real recording
        if arr.ndim not in (1, 2) or (arr.ndim == 2 and not 1 <= arr.shape[1] <= 16) or rate <= 0:
            raise AttachmentError(source, f"expects 1-D or (frames, channels) samples and a positive rate, "
                                          f"got shape {arr.shape} at {sample_rate!r} Hz")
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.round(np.clip(np.nan_to_num(arr), -1.0, 1.0) * 32767)
        elif arr.dtype != np.int16:
            raise AttachmentError(source, f"expects float or int16 samples, got {arr.dtype}")
        pcm = arr.astype("<i2")
        pcm = pcm[:, None] if pcm.ndim == 1 else pcm
        buf = io.BytesIO()
        with wave.open(buf, "wb") as wav:
            wav.setnchannels(pcm.shape[1])
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(pcm.tobytes())
        return cls.from_bytes(buf.getvalue(), name)

    @classmethod
    def from_content_block(cls, block: Mapping[str, Any], limits: MediaLimits = DEFAULT_LIMITS) -> Attachment:
        """Attach a chat content block (LangChain v1/v0, OpenAI, Anthropic); the kind is still sniffed."""
        if not isinstance(block, Mapping):
            raise AttachmentError("<content block>", f"expected a mapping, got {type(block).__name__}")
        name = str(block.get("filename") or block.get("name") or f"<{block.get('type')} block>")
        return cls.from_bytes(_block_bytes(block, _safe_name(name), limits), name, limits)

    @classmethod
    def coerce(cls, obj: object, limits: MediaLimits = DEFAULT_LIMITS) -> Attachment:
        """Whatever a user passes as media: a path, bytes, a PIL image, (samples, rate), a block."""
        if isinstance(obj, Attachment):
            return obj
        if isinstance(obj, str) and (obj[:5].lower() == "data:" or "://" in obj[:12]):
            return cls.from_content_block({"type": "file", "url": obj}, limits)
        if isinstance(obj, (str, os.PathLike)):
            return cls.from_path(obj, limits)
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return cls.from_bytes(bytes(obj), limits=limits)
        if isinstance(obj, Image.Image):
            return cls.from_image(obj)
        if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], np.ndarray):
            return cls.from_audio(obj[0], obj[1])
        if isinstance(obj, Mapping):
            return cls.from_content_block(obj, limits)
        raise AttachmentError(f"<{type(obj).__name__}>", "cannot be attached: expected a path, bytes, "
                              "a PIL image, (samples, sample_rate), a content block or an Attachment")

    def with_id(self, id: str) -> Attachment:
        """A copy with a planner handle; shares the bytes and the decode caches."""
        return self.model_copy(update={"id": _safe_name(id)})

    # -- content -----------------------------------------------------------------------

    def _open(self) -> IO[bytes]:
        """The bytes that were checked, opened again for a decode (a second turn, a video's sound track).

        A file attached by path is read again later, so what was checked at attach time (A1, A2,
        the hash) must hold for what is decoded now, whatever happened on disk in between:

        - the allowed-roots check runs again, and the path must still resolve to itself (a folder
          on the way swapped for a symlink is refused);
        - the file is opened without following a symlink in its last component (a file swapped
          for a symlink is refused, even one made between the check and the open);
        - the open descriptor must be the same file, unchanged: same device, inode, size, and
          modification and change times (``os.fstat``) as when it was attached. Otherwise — or when
          that identity cannot be trusted (the file had changed less than 2 s before it was
          attached, within a coarse timestamp's tick; or the attachment was deserialised) — the
          content is hashed through that descriptor and must match ``sha256``;
        - decoding then reads from that same descriptor.

        Raises:
            AttachmentError: the file moved, was replaced or changed since it was attached.
        """
        if self._data is not None:
            return io.BytesIO(self._data)
        if self.path is None:
            raise AttachmentError(self.name, "has no bytes (deserialised without a path)")
        if _resolve_inside(self.path, self.name, self._limits) != self.path:
            raise AttachmentError(self.name, "no longer resolves to the file that was attached (a symbolic link "
                                             "was put on its path)")
        fp, now = _open_regular(self.path, self.name)
        try:
            if self._caches.stamp is None or _stamp_of(now) != self._caches.stamp:
                digest, _head, _size = _hash_stream(fp, self.name, self._limits)
                if digest != self.sha256:
                    raise AttachmentError(self.name, "changed on disk since it was attached")
                fp.seek(0)
                self._caches.stamp = _settled(now)
        except BaseException:
            fp.close()
            raise
        return fp

    @property
    def held_bytes(self) -> int:
        """Memory this attachment holds now: its bytes (when kept in memory) and its decoded image and audio.

        What a server counts against a session's bound (``ServeSettings.max_session_bytes``).
        """
        caches = self._caches
        image = caches.image
        decoded = (image.width * image.height * len(image.getbands())) if image is not None else 0
        decoded += sum(samples.nbytes for samples in caches.audio.values())
        return (len(self._data) if self._data is not None else 0) + decoded

    def read_bytes(self) -> bytes:
        """The raw bytes; a file changed on disk since it was attached is refused."""
        if self._data is not None:
            return self._data
        with self._open() as fp, _decoding(self.name, "cannot read file"):
            data = fp.read(self.size_bytes + 1)
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise AttachmentError(self.name, "changed on disk since it was attached")
        return data

    def image(self) -> Image.Image:
        """RGB, EXIF-transposed, decoded once and cached. Shared: copy it before drawing on it."""
        if self.kind is not Modality.IMAGE:
            raise AttachmentError(self.name, f"is {self.kind.value}, not an image")
        with self._caches.lock:
            if self._caches.image is None:
                subtype = self.mime_type.partition("/")[2]
                with _decoding(self.name, "cannot decode image"), self._open() as fp, \
                        _open_image(fp, subtype, self.name, self._limits) as im:
                    im.load()
                    self._caches.image = _to_rgb(_upright(im))
            return self._caches.image

    def audio(self, sample_rate: int = 16000) -> np.ndarray:
        """Float32 mono in [-1, 1] at ``sample_rate``, cached per rate and read-only.

        Works for audio and for a video's audio track; empty audio gives an empty array.
        """
        if self.kind is Modality.IMAGE:
            raise AttachmentError(self.name, "is an image, not audio")
        if self.has_audio is False:
            raise AttachmentError(self.name, "has no audio track")
        if int(sample_rate) <= 0:
            raise AttachmentError(self.name, f"cannot resample to {sample_rate} Hz")
        with self._caches.lock:
            if int(sample_rate) not in self._caches.audio:
                samples = self._decode_audio(int(sample_rate))
                samples.flags.writeable = False
                self._caches.audio[int(sample_rate)] = samples
            return self._caches.audio[int(sample_rate)]

    def _decode_audio(self, rate: int) -> np.ndarray:
        """The whole sound at ``rate``: the streamed chunks of :meth:`iter_audio`, joined."""
        chunks = list(self.iter_audio(rate))
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

    def iter_audio(self, sample_rate: int = 16000) -> Iterator[np.ndarray]:
        """The sound as float32 mono chunks in [-1, 1] at ``sample_rate``, streamed and never cached.

        For tools that walk a long recording window by window: memory holds one decoded chunk,
        not the file. FFmpeg decodes and resamples; the duration cap holds even if the header lied.

        The downmix is the mean of the channels (as ``librosa.to_mono``): it never adds gain, so a
        loud stereo recording is neither louder nor clipped in mono, and identical channels come out
        at exactly their own level (A7). FFmpeg's own mono layout would sum the channels at 0.707
        each, +3 dB for a centred voice, and clip what was near full scale.

        Raises:
            AttachmentError: an image, no audio track, or a decoder failure (naming the file).
            MediaLimitError: more sound than the duration cap.
        """
        if self.kind is Modality.IMAGE:
            raise AttachmentError(self.name, "is an image, not audio")
        if self.has_audio is False:
            raise AttachmentError(self.name, "has no audio track")
        rate = int(sample_rate)
        cap = self._limits.max_video_seconds if self.kind is Modality.VIDEO else self._limits.max_audio_seconds
        total = 0
        with self.open_av() as container, _decoding(self.name, "cannot decode audio"):
            if not container.streams.audio:
                raise AttachmentError(self.name, "has no audio track")
            resampler = av.AudioResampler(format="fltp", rate=rate)  # keeps the channels: mixed below
            # chain, not (*decode(...), None): a tuple would decode the whole track before the first chunk
            for frame in itertools.chain(container.decode(container.streams.audio[0]), [None]):
                for out in resampler.resample(frame):
                    planes = out.to_ndarray()  # (channels, samples)
                    mono = planes.mean(axis=0) if planes.shape[0] > 1 else planes[0]
                    total += out.samples
                    yield np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)
                if total > cap * rate:
                    _duration_cap(self.name, self.kind, total / rate, self._limits)

    @contextmanager
    def open_av(self) -> Iterator[Any]:
        """An open PyAV container, for tools that stream video frames; closed on exit."""
        if self.kind is Modality.IMAGE:
            raise AttachmentError(self.name, "is an image, not audio or video")
        demuxer = _AV_DEMUXERS.get(self.mime_type.partition("/")[2])
        with self._open() as fp:
            with _decoding(self.name, "cannot open media"):
                container = av.open(fp, format=demuxer)
            with container:
                yield container

    # -- presentation ------------------------------------------------------------------

    def describe(self) -> str:
        """What the planner sees: ``video_1: video/mp4 12.0 s 640x360 with audio (clip.mp4)``."""
        parts = [f"{self.id or self.kind.value}: {self.mime_type}"]
        if self.duration is not None:
            parts.append(f"{self.duration:.1f} s")
        if self.width and self.height:
            parts.append(f"{self.width}x{self.height}")
        if self.kind is Modality.VIDEO and self.has_audio is not None:
            parts.append("with audio" if self.has_audio else "without audio")
        return " ".join([*parts, f"({self.name})"])

    def to_content_block(self) -> dict[str, Any]:
        """A LangChain v1 standard content block carrying the bytes as base64."""
        data = base64.b64encode(self.read_bytes()).decode("ascii")
        return {"type": self.kind.value, "base64": data, "mime_type": self.mime_type}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the bytes atomically (temp file + rename), so a crash never leaves half a file."""
        target = Path(path)
        data = self.read_bytes()
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            msg = f"cannot save to {_safe_name(str(target))} ({_short(exc)})"
            raise AttachmentError(self.name, msg) from exc
        return target


def _resolve_inside(given: Path, source: str, limits: MediaLimits) -> Path:
    """Resolve symlinks, then refuse anything outside every allowed root, before opening it (A1/A2)."""
    try:
        resolved = given.resolve()
        roots = None if limits.allowed_roots is None else [Path(r).resolve() for r in limits.allowed_roots]
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loops, NUL in the path
        raise AttachmentError(source, f"cannot resolve path ({_short(exc)})") from exc
    if roots is not None and not any(resolved.is_relative_to(root) for root in roots):
        raise AttachmentError(source, "is outside the allowed folders (MediaLimits.allowed_roots)")
    return resolved


def _byte_cap(source: str, size: int, limits: MediaLimits) -> None:
    if size > limits.max_bytes:
        msg = (f"is {size:,} bytes, over the {limits.max_bytes:,} byte cap "
               "(raise it with MediaLimits(max_bytes=...))")
        raise MediaLimitError(source, msg)


def _check_file(resolved: Path, source: str, limits: MediaLimits) -> None:
    """Stat before opening: missing, directories, FIFOs and devices (/dev/zero) are refused."""
    try:
        st = resolved.stat()
    except FileNotFoundError as exc:
        raise AttachmentError(source, "no such file") from exc
    except (OSError, ValueError) as exc:
        raise AttachmentError(source, f"cannot access file ({_short(exc)})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise AttachmentError(source, "is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise AttachmentError(source, "is not a regular file")
    _byte_cap(source, st.st_size, limits)
    if st.st_size == 0:
        raise AttachmentError(source, "is empty (0 bytes)")


_SETTLED_NS = 2_000_000_000  # file times tick coarsely: a change this recent may hide a second one
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


def _open_regular(path: Path, source: str) -> tuple[IO[bytes], os.stat_result]:
    """Open a regular file for reading, never through a symlink in its last component.

    ``O_NONBLOCK`` keeps a FIFO from blocking the open (it is refused just after, from ``fstat``);
    directories and devices (``/dev/zero``) are refused the same way, before any byte is read.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError as exc:
        raise AttachmentError(source, "no such file") from exc
    except (OSError, ValueError) as exc:  # ValueError: NUL in the path
        if getattr(exc, "errno", None) in (errno.ELOOP, errno.EMLINK):
            raise AttachmentError(source, "is now a symbolic link (the file was replaced after it was checked)") \
                from exc
        raise AttachmentError(source, f"cannot read file ({_short(exc)})") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise AttachmentError(source, "is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise AttachmentError(source, "is not a regular file")
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def _stamp_of(st: os.stat_result) -> _Stamp:
    """What identifies one version of one file: device, inode, size, modification and change times."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _settled(st: os.stat_result) -> _Stamp | None:
    """The file's stamp, or None when it changed too recently for its times to prove it unchanged later."""
    recent = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _SETTLED_NS
    return None if recent else _stamp_of(st)


def _reread(fp: IO[bytes]) -> IO[bytes]:
    """A second handle on ``fp``'s file, at its start; closing it leaves ``fp`` open."""
    fp.seek(0)
    return os.fdopen(os.dup(fp.fileno()), "rb")


def _hash_stream(fp: IO[bytes], source: str, limits: MediaLimits) -> tuple[str, bytes, int]:
    """Stream the sha256 of an open file from its start; the head is kept for sniffing.

    The cap is enforced again while reading, since the file may have grown after the stat.
    """
    digest, size = hashlib.sha256(), 0
    try:
        fp.seek(0)
        head = fp.read(_HEAD)
        chunk = head
        while chunk:
            digest.update(chunk)
            size += len(chunk)
            _byte_cap(source, size, limits)
            chunk = fp.read(1 << 20)
    except OSError as exc:
        raise AttachmentError(source, f"cannot read file ({_short(exc)})") from exc
    return digest.hexdigest(), head, size
