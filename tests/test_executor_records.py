"""What the executor records for each step: errors by kind, produced media, progress, resolved args.

bench/mutation.py found these unguarded (mutants of the recording code survived every test): a
step's error text and type, the ids given to several produced images, the clamping of progress
fractions, and references inside list arguments.
"""

from __future__ import annotations

from PIL import Image

from polymodal import Attachment, ToolError
from polymodal.agent.executor import Executor, StepProgress
from polymodal.agent.plan import Plan
from polymodal.tools import ImageInput, report_progress, tool


@tool
def refuse(text: str) -> str:
    """Fails the polymodal way."""
    raise ToolError("refuse", f"cannot handle {text}")


@tool
def quota(text: str) -> str:
    """Fails with LangChain's own ToolException (no polymodal error behind it)."""
    from langchain_core.tools import ToolException

    raise ToolException(f"quota exceeded for {text}")


@tool
def crash(text: str) -> str:
    """Fails with a library's exception."""
    raise KeyError(text)


@tool
def two_images(color: str) -> tuple[str, list[Attachment]]:
    """Make two images."""
    images = [Attachment.from_image(Image.new("RGB", (4 + i, 4), color), f"{i}.png") for i in range(2)]
    return "made two", images


@tool
def size(image: ImageInput, labels: list[str]) -> str:
    """Report an image's size under labels."""
    return " / ".join(labels) + f": {image.id} {image.width}x{image.height}"


@tool
def chatty(text: str) -> str:
    """Report progress out of range."""
    report_progress("starting " + "x" * 600, -0.5)
    report_progress("half", 0.5)
    report_progress("done", 1.7)
    report_progress("unknown")
    return text


TOOLS = {t.name: t for t in (refuse, quota, crash, two_images, size, chatty)}


def run(*steps: dict, events: list | None = None):
    plan = Plan.model_validate({"steps": list(steps)})
    attachments: dict = {}
    hook = (lambda name, payload: events.append((name, payload))) if events is not None else None
    return Executor(TOOLS).run(plan, attachments, on_event=hook), attachments


def test_errors_are_recorded_by_kind():
    (polite, plain, rude), _ = run({"id": "s1", "tool": "refuse", "args": {"text": "this"}},
                                   {"id": "s2", "tool": "quota", "args": {"text": "me"}},
                                   {"id": "s3", "tool": "crash", "args": {"text": "key"}})
    assert (polite.status, polite.error_type, polite.error) == ("error", "ToolError", "refuse: cannot handle this")
    assert (plain.status, plain.error_type, plain.error) == ("error", "ToolError", "quota exceeded for me")
    assert (rude.status, rude.error_type, rude.error) == ("error", "KeyError", "crash: KeyError: 'key'")
    assert polite.content is None and rude.content is None and polite.seconds >= 0 and rude.seconds >= 0


def test_every_produced_image_gets_an_id_and_each_item_of_a_list_argument_is_resolved():
    (made, measured), attachments = run(
        {"id": "s1", "tool": "two_images", "args": {"color": "red"}},
        {"id": "s2", "tool": "size", "args": {"image": "s1", "labels": ["from {s1}", "s1", "plain"]}},
    )
    assert made.content == "made two" and made.artifact_ids == ["image_1", "image_2"]
    assert sorted(attachments) == ["image_1", "image_2"] and attachments["image_2"].width == 5
    assert measured.args == {"image": "image_1", "labels": ["from made two", "made two", "plain"]}
    assert measured.content == "from made two / made two / plain: image_1 4x4"


def test_progress_is_clamped_cut_and_attributed():
    events: list = []
    run({"id": "s1", "tool": "chatty", "args": {"text": "ok"}}, events=events)
    reports = [payload for name, payload in events if name == "step_progress"]
    assert all(isinstance(r, StepProgress) and (r.step_id, r.tool) == ("s1", "chatty") for r in reports)
    assert [r.fraction for r in reports] == [0.0, 0.5, 1.0, None]
    assert len(reports[0].message) == 500 and reports[1].message == "half"
    assert [name for name, _ in events] == ["step_started", *["step_progress"] * 4, "step_finished"]
