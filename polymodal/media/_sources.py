"""Inline sources: base64 data, data: URLs and chat content blocks turned into bytes, capped."""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Mapping
from typing import Any

from polymodal.errors import AttachmentError, MediaLimitError
from polymodal.media._kinds import MediaLimits, _safe_name

__all__: list[str] = []


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
