"""What the executor records for each step: errors by kind, produced media, progress, resolved args.

bench/mutation.py found these unguarded (mutants of the recording code survived every test): a
step's error text and type, the ids given to several produced images, the clamping of progress
fractions, references inside list arguments, an output that cannot be stored, and the context a
step runs in (its id, the executor's host, its deadline).
"""

from __future__ import annotations

from PIL import Image
from pydantic import BaseModel, ConfigDict

from polymodal import Attachment, AttachmentError, Tool, ToolError, ToolOutput
from polymodal.agent.conversation import Conversation
from polymodal.agent.events import StepFinished, StepProgress, StepStarted
from polymodal.agent.executor import Executor
from polymodal.agent.plan import Plan
from polymodal.runtime.calls import current_deadline
from polymodal.tools import ImageInput, ImageRefs, report_progress, tool
from polymodal.tools.base import current_context


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
def misfile(text: str) -> str:
    """Fails with another of polymodal's own errors (it reaches the executor wrapped in a ToolError)."""
    raise AttachmentError(f"{text}.png", "not an image")


@tool
def two_images(color: str) -> tuple[str, list[Attachment]]:
    """Make two images."""
    images = [Attachment.from_image(Image.new("RGB", (4 + i, 4), color), f"{i}.png") for i in range(2)]
    return "made two", images


@tool
def size(image: ImageInput, labels: list[str]) -> str:
    """Report an image's size under labels."""
    return " / ".join(labels) + f": {image.id} {image.width}x{image.height}"


class GalleryArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: ImageRefs


class Gallery(Tool):
    """A tool taking a list of images (as clip_matcher does), written as a Tool subclass."""

    name: str = "gallery"
    description: str = "List images with their widths."
    args_schema: type[BaseModel] = GalleryArgs

    def execute_batch(self, inputs):
        return [ToolOutput(content=", ".join(f"{image.id} {image.width}" for image in i["images"])) for i in inputs]


@tool
def fill(template: str, options: dict[str, str]) -> str:
    """Fill a template from named options."""
    return template.format(**options)


@tool
def chatty(text: str) -> str:
    """Report progress out of range."""
    report_progress("starting " + "x" * 600, -0.5)
    report_progress("half", 0.5)
    report_progress("done", 1.7)
    report_progress("unknown")
    return text


@tool(timeout=30)
def whereami(text: str) -> str:
    """Report the step's context: its id, where models run, and how far off its deadline is."""
    ctx = current_context()
    assert ctx is not None
    left = current_deadline().remaining()
    left_text = "none" if left is None else f"{left:.3f}"
    return f"{ctx.step_id} {ctx.host} {left_text}"


@tool
def nowhere(text: str) -> str:
    """The same report, from a tool without a timeout."""
    return "some" if current_deadline().bounded else "none"


TOOLS = {t.name: t for t in (refuse, quota, crash, misfile, two_images, size, Gallery(), fill, chatty, whereami,
                              nowhere)}


def run(*steps: dict, events: list | None = None, conversation: Conversation | None = None, **kwargs):
    plan = Plan.model_validate({"steps": list(steps)})
    conversation = conversation or Conversation()
    hook = events.append if events is not None else None
    return Executor(TOOLS).run(plan, conversation, on_event=hook, **kwargs), conversation.attachments


def test_errors_are_recorded_by_kind():
    (polite, plain, rude), _ = run({"id": "s1", "tool": "refuse", "args": {"text": "this"}},
                                   {"id": "s2", "tool": "quota", "args": {"text": "me"}},
                                   {"id": "s3", "tool": "crash", "args": {"text": "key"}})
    assert (polite.status, polite.error_type, polite.error) == ("error", "ToolError", "refuse: cannot handle this")
    ((other,), _) = run({"id": "s1", "tool": "misfile", "args": {"text": "scan"}})
    assert (other.status, other.error_type, other.error) == ("error", "AttachmentError", "scan.png: not an image")
    assert (plain.status, plain.error_type, plain.error) == ("error", "ToolError", "quota exceeded for me")
    assert (rude.status, rude.error_type, rude.error) == ("error", "KeyError", "crash: KeyError: 'key'")
    assert polite.content is None and rude.content is None and polite.seconds >= 0 and rude.seconds >= 0


def test_every_produced_image_gets_an_id_and_each_item_of_a_list_argument_is_resolved():
    (made, measured), attachments = run(
        {"id": "s1", "tool": "two_images", "args": {"color": "red"}},
        {"id": "s2", "tool": "size", "args": {"image": "s1", "labels": ["from {s1}", "s1", "plain"]}},
    )
    assert made.content == "made two" and made.artifact_ids == ["image_1", "image_2"]
    assert [image.width for image in made.artifact] == [4, 5]  # the typed output, as the tool returned it
    assert sorted(attachments) == ["image_1", "image_2"] and attachments["image_2"].width == 5
    assert measured.args == {"image": "image_1", "labels": ["from made two", "made two", "plain"]}
    assert measured.content == "from made two / made two / plain: image_1 4x4"


def test_a_list_of_media_takes_the_images_earlier_steps_made():
    (_, listed), _ = run({"id": "s1", "tool": "two_images", "args": {"color": "red"}},
                         {"id": "s2", "tool": "gallery", "args": {"images": ["s1", "image_2"]}})
    assert listed.args == {"images": ["image_1", "image_2"]} and listed.content == "image_1 4, image_2 5"


def test_references_inside_a_mapping_argument_are_resolved():
    (_, filled), _ = run({"id": "s1", "tool": "two_images", "args": {"color": "red"}},
                         {"id": "s2", "tool": "fill", "args": {"template": "{a} and {b}",
                                                               "options": {"a": "s1", "b": "[{s1}]"}}})
    assert filled.args["options"] == {"a": "made two", "b": "[made two]"}
    assert filled.content == "made two and [made two]"


def test_progress_is_clamped_cut_and_attributed():
    events: list = []
    run({"id": "s1", "tool": "chatty", "args": {"text": "ok"}}, events=events)
    reports = [event for event in events if isinstance(event, StepProgress)]
    assert all((r.step_id, r.tool) == ("s1", "chatty") for r in reports)
    assert [r.fraction for r in reports] == [0.0, 0.5, 1.0, None]
    assert len(reports[0].message) == 500 and reports[1].message == "half"
    assert [type(event) for event in events] == [StepStarted, *[StepProgress] * 4, StepFinished]
    assert [event.type for event in events] == ["step_started", *["step_progress"] * 4, "step_finished"]


def test_an_output_that_cannot_be_stored_is_the_steps_error_and_the_run_goes_on():
    class Full(Conversation):
        def add(self, attachment: Attachment) -> Attachment:
            raise AttachmentError(attachment.name, "over this conversation's attachment cap")

    (made, measured), _ = run({"id": "s1", "tool": "two_images", "args": {"color": "red"}},
                              {"id": "s2", "tool": "misfile", "args": {"text": "other"}}, conversation=Full())
    assert (made.status, made.error_type, made.error) == ("error", "AttachmentError",
                                                          "0.png: over this conversation's attachment cap")
    assert (made.content, made.artifact, made.artifact_ids) == (None, None, [])
    assert measured.error_type == "AttachmentError"


def test_a_step_runs_with_its_own_id_the_executors_host_and_its_deadline():
    plan = Plan.model_validate({"steps": [{"id": "s1", "tool": "whereami", "args": {"text": "x"}},
                                          {"id": "s2", "tool": "nowhere", "args": {"text": "x"}}]})
    here, there = Executor(TOOLS, host="inprocess").run(plan, Conversation())
    step_id, host, left = (here.content or "").split()
    assert (step_id, host, there.content) == ("s1", "inprocess", "none")
    assert 20 < float(left) <= 30  # its own 30 s timeout, counted from its start
