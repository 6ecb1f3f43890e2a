"""Media kinds and caps, and the helpers every media module shares: safe names, short errors, decoder guards."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from polymodal.errors import AttachmentError

__all__: list[str] = []


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
