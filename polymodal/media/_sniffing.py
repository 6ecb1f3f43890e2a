"""Sniffing: a file's kind from its first bytes, never its extension, and what a refused file looks like."""

from __future__ import annotations

import struct

from polymodal.media._kinds import _LOOKS_LIKE, _PREFIXES

__all__: list[str] = []


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
