"""What an MCP client sends for a media argument, turned into a checked Attachment.

An MCP client cannot upload an attachment first and name it by id, so a media argument carries
the medium itself: a ``data:`` URL, plain base64, or (over stdio only, where the client is a
program of the same user on the same machine) a local path. A path still goes through every
check :meth:`Attachment.from_path` makes (the allowed folders, sniffing from the bytes, the caps);
over HTTP a path is refused before anything touches the file system, since the caller is remote
and the server's files are not theirs to name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from polymodal.errors import AttachmentError, ToolError
from polymodal.media import Attachment, MediaLimits, Modality
from polymodal.tools.base import attachment_fields

__all__ = ["MediaArguments", "input_schema"]

_BASE64 = re.compile(r"^[A-Za-z0-9+/=_\-\s]+$")
_PATH_LIKE = re.compile(r"^(~|\.{1,2}[/\\]|/[^/+=]*[/.]|[A-Za-z]:[/\\])")
_WHAT = {Modality.IMAGE: "an image", Modality.AUDIO: "an audio file (or a video, for its sound track)",
         Modality.VIDEO: "a video"}


def input_schema(args_schema: type[BaseModel], *, paths: bool) -> dict[str, Any]:
    """The tool's JSON schema as MCP clients see it: media arguments described as what to send.

    The ``modality`` key stays on each media argument, so :func:`polymodal.tools.mcp_tools` on the
    other end knows to send an attachment there.
    """
    schema = args_schema.model_json_schema()
    properties = schema.get("properties", {})
    how = "a local file path, a data: URL, or base64" if paths else "a data: URL or base64 (no paths over HTTP)"
    for name, modality in attachment_fields(args_schema).items():
        prop = properties.get(name)
        if isinstance(prop, dict):
            many = prop.get("type") == "array"
            prop["description"] = f"{_WHAT[modality]}{' each' if many else ''}: {how}"
    schema.pop("title", None)
    return schema


class MediaArguments:
    """Decodes the media arguments of one call into attachments named ``image_1``, ``audio_1``, ...

    ``paths`` says whether local paths are accepted (stdio: yes; HTTP: never).
    """

    def __init__(self, limits: MediaLimits, *, paths: bool) -> None:
        self.limits = limits
        self.paths = paths
        self.attachments: dict[str, Attachment] = {}

    def replace(self, tool: str, args_schema: type[BaseModel], arguments: Mapping[str, Any]) -> dict[str, Any]:
        """``arguments`` with every media value attached and replaced by its id."""
        out = dict(arguments)
        for name, _modality in attachment_fields(args_schema).items():
            value = arguments.get(name)
            if value is None:
                continue
            if isinstance(value, list):
                out[name] = [self.add(tool, name, item) for item in value]
            else:
                out[name] = self.add(tool, name, value)
        return out

    def add(self, tool: str, argument: str, value: Any) -> str:
        """Attach one value and return its id."""
        attachment = self.attach(tool, argument, value)
        kind = attachment.kind.value
        named = attachment.with_id(f"{kind}_{1 + sum(1 for key in self.attachments if key.startswith(kind))}")
        self.attachments[named.id or ""] = named
        return named.id or ""

    def attach(self, tool: str, argument: str, value: Any) -> Attachment:
        """One media value as a checked Attachment (typed errors name the argument)."""
        if not isinstance(value, str) or not value.strip():
            msg = f"argument {argument!r} must be a non-empty string (a data: URL or base64)"
            raise ToolError(tool, msg)
        source = f"argument {argument!r}"
        if value[:5].lower() == "data:":
            return Attachment.from_content_block({"type": "file", "url": value, "filename": source}, self.limits)
        if "://" in value[:12]:
            msg = f"{source}: URLs are not fetched; send the file as a data: URL or base64"
            raise ToolError(tool, msg)
        if len(value) < 4096 and not _BASE64.match(value):  # "photo.png", "C:\\x": no base64 has these
            return self._path(tool, source, value)
        if len(value) < 4096 and _PATH_LIKE.match(value):  # "/etc/passwd" is also valid base64
            if self.paths and os.path.lexists(value):
                return Attachment.from_path(value, self.limits)
            try:
                return self._base64(source, value)
            except AttachmentError:
                return self._path(tool, source, value)  # stdio: "no such file" says more than "bad base64"
        return self._base64(source, value)

    def _base64(self, source: str, value: str) -> Attachment:
        return Attachment.from_content_block({"type": "file", "base64": value, "filename": source}, self.limits)

    def _path(self, tool: str, source: str, value: str) -> Attachment:
        if not self.paths:
            msg = (f"{source} looks like a file path; over HTTP send the file itself as a data: URL or "
                   "base64 (paths are accepted over stdio only)")
            raise ToolError(tool, msg)
        return Attachment.from_path(value, self.limits)
