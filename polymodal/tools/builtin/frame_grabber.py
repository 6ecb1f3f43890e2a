"""Frame grabber: the picture at one moment of a video, as an image a later step can use.

"What happens at 0:42?" is a frame plus a question, not a whole summary: the planner routes it to
``frame_grabber`` and then ``captioner`` or ``visual_qa`` on the step's output. The image is the
artifact (an Attachment), so the executor registers it as ``image_N`` for the next step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from polymodal.media import Attachment, Modality
from polymodal.tools.base import Tool, ToolOutput, VideoRef
from polymodal.tools.builtin.keyframes import grab_frame, hms, parse_time

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools


class FrameGrabberArgs(BaseModel):
    """Arguments of the frame grabber."""

    model_config = ConfigDict(extra="forbid")

    video: VideoRef
    at: float = Field(ge=0, description="the moment, in seconds from the start (42) or as a time ('0:42')")

    @field_validator("at", mode="before")
    @classmethod
    def _clock(cls, value: object) -> float:
        return parse_time(value)


class FrameGrabber(Tool):
    """Returns the frame shown at a given time of a video, as an image attachment."""

    name: str = "frame_grabber"
    description: str = (
        "Take the frame shown at one moment of a video (e.g. at=42 or at='0:42') as an image. Use it for "
        "'what happens at 0:42', then give its output to captioner or visual_qa."
    )
    args_schema: type[BaseModel] = FrameGrabberArgs
    max_side: int = 768
    """The image's longer side is shrunk to this at most."""

    output_modality: ClassVar[Modality] = Modality.IMAGE
    direct_answer: ClassVar[bool] = False

    def execute_batch(self, inputs: Sequence[dict[str, Any]]) -> list[ToolOutput]:
        outputs = []
        for item in inputs:
            video: Attachment = item["video"]
            time, image = grab_frame(video, float(item["at"]), self.max_side)
            name = f"{PurePath(video.name).stem}@{hms(time).replace(':', '-')}.png"
            frame = Attachment.from_image(image, name=name)
            outputs.append(ToolOutput(content=f"the frame at {hms(time)} of {video.name}", artifact=frame))
        return outputs
