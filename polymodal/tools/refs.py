"""Attachment references in tool arguments: ``ImageRef`` and friends, and which fields hold them."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field

from polymodal.media import Modality

__all__ = ["AudioRef", "ImageRef", "ImageRefs", "VideoRef", "attachment_fields"]


_ID_PATTERN = re.compile(r"^(image|audio|video)_\d+$")


def _ref(modality: Modality, description: str) -> Any:
    return Field(description=description, json_schema_extra={"modality": modality.value})


ImageRef = Annotated[str, _ref(Modality.IMAGE, "id of an image attachment, e.g. image_1")]
AudioRef = Annotated[
    str, _ref(Modality.AUDIO, "id of an audio attachment (or a video, for its sound track), e.g. audio_1")
]
VideoRef = Annotated[str, _ref(Modality.VIDEO, "id of a video attachment, e.g. video_1")]
ImageRefs = Annotated[list[str], _ref(Modality.IMAGE, "ids of image attachments, e.g. [\"image_1\"]")]

# Which attachment kinds an argument of a modality accepts: a video's sound track is audio.
ACCEPTS: dict[Modality, frozenset[Modality]] = {
    Modality.IMAGE: frozenset({Modality.IMAGE}),
    Modality.AUDIO: frozenset({Modality.AUDIO, Modality.VIDEO}),
    Modality.VIDEO: frozenset({Modality.VIDEO}),
}


@functools.cache
def attachment_fields(args_schema: type[BaseModel]) -> dict[str, Modality]:
    """Map each argument that references media to its modality, read from the args model (once per model)."""
    found: dict[str, Modality] = {}
    for name, info in args_schema.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, Mapping) and "modality" in extra:
            found[name] = Modality(str(extra["modality"]))
    return found
