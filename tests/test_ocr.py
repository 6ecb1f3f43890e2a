"""OCR with the real PP-OCR ONNX models that the rapidocr wheel ships (no download, no hub).

Rendered text must be read back (character error rate), boxes must lie inside the image, and a
blank image must say so. (conftest points $XDG_CACHE_HOME, where onnxruntime writes, at a temporary
folder so the user's home is left alone.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, Attachment, ConfigurationError, MissingDependencyError, PlanValidationError
from polymodal.agent.plan import Plan, Step, validate_plan
from polymodal.tools import OCR, OCRResult
from polymodal.tools.builtin.ocr import NO_TEXT, OCRArgs

pytest.importorskip("rapidocr", reason="the ocr extra is not installed: pip install 'polymodal[ocr]'")


def cer(expected: str, got: str) -> float:
    """Character error rate: Levenshtein distance / length of the expected text."""
    previous = list(range(len(got) + 1))
    for i, a in enumerate(expected, 1):
        current = [i]
        for j, b in enumerate(got, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1] / max(1, len(expected))


def packaged_models_copy(folder: Path) -> Path:
    """A model folder holding the wheel's ONNX files (linked), as a user's own models would be."""
    import rapidocr

    folder.mkdir(parents=True, exist_ok=True)
    for onnx in (Path(rapidocr.__file__).parent / "models").glob("*.onnx"):
        (folder / onnx.name).symlink_to(onnx)
    return folder


def test_reads_rendered_text_back_with_boxes_inside_the_image(media):
    image = Attachment.from_path(media.text_image("HELLO WORLD 42", font_size=32))
    result = OCR().execute(image=image).artifact
    assert isinstance(result, OCRResult) and (result.width, result.height) == (image.width, image.height)
    assert cer("HELLO WORLD 42", result.text) <= 0.1, result.text
    assert result.lines and all(0 <= x <= result.width and 0 <= y <= result.height
                                for line in result.lines for x, y in line.box)
    assert all(0.5 <= line.score <= 1.0 for line in result.lines)


def test_blank_image_says_no_text(media):
    out = OCR().execute(image=Attachment.from_path(media.png(color=(255, 255, 255), size=(120, 60))))
    assert out.content == NO_TEXT and out.artifact.lines == []


def test_batch_equals_one_by_one_and_min_score_filters(media):
    ocr = OCR()
    inputs = [{"image": Attachment.from_path(media.text_image("OPEN 24", name="a.png", font_size=28))},
              {"image": Attachment.from_path(media.text_image("EXIT", name="b.png", font_size=28)), "min_score": 1.0}]
    batched = ocr.execute_batch(inputs)
    assert [o.artifact for o in batched] == [ocr.execute(**item).artifact for item in inputs]
    assert cer("OPEN 24", batched[0].content) <= 0.15, batched[0].content
    assert all(line.score >= 1.0 for line in batched[1].artifact.lines)


def test_a_folder_of_models_loads_and_a_missing_one_is_a_configuration_error(media, tmp_path):
    image = Attachment.from_path(media.text_image("HELLO", font_size=28))
    assert "HELLO" in OCR(model=str(packaged_models_copy(tmp_path / "ppocr"))).execute(image=image).content
    with pytest.raises(ConfigurationError, match="ocr: model folder '/no/such/ppocr' does not exist"):
        OCR(model="/no/such/ppocr").execute(image=image)
    partial = packaged_models_copy(tmp_path / "partial")  # rapidocr would download what is missing: refuse
    (partial / "PP-OCRv6_det_small.onnx").unlink()
    with pytest.raises(ConfigurationError, match=r"lacks .*PP-OCRv6_det_small\.onnx"):
        OCR(model=str(partial)).execute(image=image)


def test_without_rapidocr_the_error_names_the_extra(media, tmp_path, monkeypatch):
    ocr = OCR(model=str(packaged_models_copy(tmp_path / "fresh")))  # a model the cache has not loaded yet
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # what `import rapidocr` sees when it is not installed
    with pytest.raises(MissingDependencyError, match=r"polymodal\[ocr\]"):
        ocr.execute(image=Attachment.from_path(media.png()))


@pytest.mark.parametrize("args", [{}, {"image": "image_1", "min_score": 2}, {"image": "image_1", "lang": "en"}],
                         ids=["no-image", "score-over-1", "unknown-arg"])
def test_schema_rejects_bad_args(args):
    with pytest.raises(ValidationError):
        OCRArgs.model_validate(args)


def test_wrong_modality_is_rejected_at_plan_validation(media):
    video = Attachment.from_path(media.video()).with_id("video_1")
    plan = Plan(steps=[Step(id="s1", tool="ocr", args={"image": "video_1"})])
    with pytest.raises(PlanValidationError, match=r"args\.image: video_1 is video"):
        validate_plan(plan, {"ocr": OCR()}, {"video_1": video})


def test_agent_reads_a_sign(media):
    plan = json.dumps({"steps": [{"id": "s1", "tool": "ocr", "args": {"image": "image_1"}}], "answer": "s1"})
    reply = Agent(llm=ScriptedChatModel(responses=[plan]), tools=[OCR()]).chat(
        "What does the sign say?", attachments=[media.text_image("EXIT 7", font_size=28)])
    assert reply.steps[0].ok and reply.fusion == "passthrough"
    assert cer("EXIT 7", reply.text) <= 0.2, reply.text
