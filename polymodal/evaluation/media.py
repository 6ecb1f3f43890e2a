"""Small real files standing in for a case's attachments: planners see metadata, never content.

A planner reads an attachment's id, kind, type and size (``image_1: image/png 64x64``), so a
generated image, a second of silence or a one-second clip is all an evaluation needs; each is a
valid file that passes the same validation a user's file does.
"""

from __future__ import annotations

import io
from fractions import Fraction
from functools import cache

import numpy as np
from PIL import Image

from polymodal.media import Attachment, Modality

__all__ = ["placeholder"]


def placeholder(kind: Modality, name: str) -> Attachment:
    """A small valid attachment of ``kind`` shown under ``name`` (e.g. the file a request names)."""
    if kind is Modality.IMAGE:
        return Attachment.from_bytes(_png(), name)
    if kind is Modality.AUDIO:
        return Attachment.from_audio(np.zeros(8000, dtype=np.float32), 16000, name)
    return Attachment.from_bytes(_mp4(), name)


@cache
def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 140, 160)).save(buf, format="PNG")
    return buf.getvalue()


@cache
def _mp4() -> bytes:
    """One second of grey frames with a silent AAC track, encoded in memory with PyAV."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=5)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 128, dtype=np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        samples = np.zeros((1, 1024), dtype=np.float32)
        for index in range(16):
            chunk = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 16000, index * 1024, Fraction(1, 16000)
            container.mux(audio.encode(chunk))
        container.mux(audio.encode())
    return buf.getvalue()
