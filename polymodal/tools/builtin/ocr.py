"""OCR: image -> the text written in it, line by line, with a box and a confidence per piece.

Backed by rapidocr, whose wheel ships PP-OCR detection, orientation and recognition models as
ONNX files: the tool works fully offline with real weights and needs no torch model. ``model`` is
``"rapidocr"`` (the packaged models) or a folder holding other PP-OCR ONNX files (rapidocr's
``model_root_dir``). The engine is built once through the shared model cache, like every model.

rapidocr reads one image per call (its detector works at each image's own size), so a batch is a
loop over images with one loaded engine; the gain over separate calls is the load, not the math.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from polymodal.errors import ConfigurationError, MissingDependencyError
from polymodal.runtime.loading import load_checked
from polymodal.tools.base import ImageRef, ModelTool, ToolOutput

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

PACKAGED = "rapidocr"
NO_TEXT = "(no text found)"


class OCRArgs(BaseModel):
    """Arguments of the OCR tool."""

    model_config = ConfigDict(extra="forbid")

    image: ImageRef
    min_score: float = Field(default=0.5, ge=0.0, le=1.0, description="drop pieces read with lower confidence")


class OCRLine(BaseModel):
    """One piece of text as the recogniser read it, with its box in image pixels."""

    text: str
    score: float
    box: list[tuple[float, float]]
    """Four corners, clockwise from top-left, in pixels of the (EXIF-upright) image."""


class OCRResult(BaseModel):
    """The artifact of ocr: the text in reading order and every piece with its box."""

    text: str
    """Pieces joined in reading order: a space within a row, a newline between rows; NO_TEXT if none."""
    lines: list[OCRLine] = Field(default_factory=list)
    width: int
    height: int


class OCR(ModelTool):
    """Reads printed text in an image with PP-OCR (rapidocr, ONNX, offline)."""

    name: str = "ocr"
    description: str = (
        "Read the text written in an image (signs, documents, screenshots, labels, receipts) and "
        "return it line by line with where each piece is. Use it for 'what does this say', 'read "
        "the sign', 'transcribe this document'. Not for describing the picture: use captioner."
    )
    args_schema: type[BaseModel] = OCRArgs
    model: str = PACKAGED
    device: str | None = "cpu"
    """rapidocr runs on onnxruntime's CPU provider here; the cache entry is keyed to the CPU."""

    direct_answer: ClassVar[bool] = True
    coalesce_by_default: ClassVar[bool] = False
    """rapidocr reads one image per call: sharing calls would only queue them behind each other."""

    @property
    def uses_torch(self) -> bool:
        return False  # ONNX models on onnxruntime

    def load(self, device: str, dtype: Any) -> Any:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise MissingDependencyError("the ocr tool", "rapidocr", "ocr") from exc
        # onnxruntime's default (every core, twice over) thrashes a small busy machine; OMP_NUM_THREADS is
        # the usual knob for "how many threads may a CPU model use", so it decides here too (-1: all).
        threads = int(os.environ.get("OMP_NUM_THREADS", "-1") or -1)
        params: dict[str, Any] = {
            "Global.log_level": "warning",
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": threads,
        }
        if self.model != PACKAGED:
            load_checked(self.name, self.model, lambda: None)  # a missing folder: ConfigurationError
            _check_model_folder(self.name, Path(self.model).expanduser())
            params["Global.model_root_dir"] = str(Path(self.model).expanduser())
        engine = RapidOCR(params=params)
        # rapidocr opens its ONNX sessions on the first image; open them now so that the load is
        # paid here, once, under the cache's load lock (and cold vs warm timings mean what they say).
        for opener in ("_load_det_model", "_load_cls_model", "_load_rec_model"):
            getattr(engine, opener, lambda: None)()
        return engine

    def prepare(self, inputs: Sequence[dict[str, Any]]) -> list[tuple[np.ndarray, float]]:
        return [(np.asarray(item["image"].image()), float(item.get("min_score", 0.5))) for item in inputs]

    def encode(self, bundle: Any, prepared: list[tuple[np.ndarray, float]]) -> list[np.ndarray]:
        return [pixels for pixels, _ in prepared]

    def forward(self, bundle: Any, encoded: list[np.ndarray]) -> list[Any]:
        return [bundle(pixels) for pixels in encoded]

    def decode(self, bundle: Any, outputs: list[Any], prepared: list[tuple[np.ndarray, float]]) -> list[ToolOutput]:
        results = []
        for raw, (pixels, min_score) in zip(outputs, prepared, strict=True):
            height, width = pixels.shape[:2]
            lines = [line for line in _lines(raw, width, height) if line.score >= min_score]
            result = OCRResult(text=_reading_order(lines) or NO_TEXT, lines=lines, width=width, height=height)
            results.append(ToolOutput(content=result.text, artifact=result))
        return results


def _check_model_folder(what: str, folder: Path) -> None:
    """Insist on the files rapidocr expects: for any it lacks, it would try to download them."""
    from rapidocr import RapidOCR

    packaged = Path(sys.modules[RapidOCR.__module__].__file__ or "").parent / "models"
    missing = sorted(p.name for p in packaged.glob("*.onnx") if not (folder / p.name).is_file())
    if missing:
        msg = f"{what}: model folder {str(folder)!r} lacks {', '.join(missing)} (rapidocr would download them)"
        raise ConfigurationError(msg)


def _lines(raw: Any, width: int, height: int) -> list[OCRLine]:
    boxes, texts, scores = getattr(raw, "boxes", None), getattr(raw, "txts", None), getattr(raw, "scores", None)
    if boxes is None or texts is None:
        return []
    lines = []
    for box, text, score in zip(boxes, texts, scores or [1.0] * len(texts), strict=False):
        text = " ".join(str(text).split())
        if not text:
            continue
        # Detector boxes can poke a pixel past the border after unclipping: clamp into the image.
        corners = [(min(max(float(x), 0.0), float(width)), min(max(float(y), 0.0), float(height))) for x, y in box]
        lines.append(OCRLine(text=text, score=float(score), box=corners))
    return lines


def _reading_order(lines: list[OCRLine]) -> str:
    """Group pieces into rows (vertical centres inside the row's first box), rows top to bottom."""
    rows: list[tuple[float, float, list[OCRLine]]] = []  # (top, bottom, pieces)
    for line in sorted(lines, key=lambda ln: _centre(ln)[1]):
        cy = _centre(line)[1]
        if rows and rows[-1][0] <= cy <= rows[-1][1]:
            rows[-1][2].append(line)
        else:
            ys = [y for _, y in line.box]
            rows.append((min(ys), max(ys), [line]))
    return "\n".join(" ".join(p.text for p in sorted(row, key=lambda ln: _centre(ln)[0])) for _, _, row in rows)


def _centre(line: OCRLine) -> tuple[float, float]:
    xs, ys = zip(*line.box, strict=True)
    return sum(xs) / len(xs), sum(ys) / len(ys)
