"""Every plan, from any planner or tier, is validated against the tools and the agent's Settings first.

README promises "no tool runs before the plan is valid". The built-in tiers validate their own
plans; these tests hold the promise for a custom ``Agent(planner=...)`` too, and check that
``Settings.max_steps`` is the limit of every tier, at its boundary: exactly ``max_steps`` steps
run, one more is refused before anything runs.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image
from support.fake_llm import ScriptedChatModel

from polymodal import Agent, ImageInput, PlanningError, Settings, tool
from polymodal.agent.conversation import ConversationView
from polymodal.agent.plan import Plan, Step, validate_plan
from polymodal.agent.planner import PlanningRequest, PlanOutcome
from polymodal.errors import PlanValidationError

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (90, 90, 90),
           (200, 120, 0), (0, 120, 200), (120, 0, 200)]


class FixedPlanner:
    """A user's own planner (``Agent(planner=...)``): returns one fixed plan, trusted by nobody."""

    def __init__(self, plan: Plan) -> None:
        self.fixed = plan

    def plan(self, request: PlanningRequest, tools, *, config=None) -> PlanOutcome:
        return PlanOutcome(plan=self.fixed, tier="llm")


@pytest.fixture
def ran() -> list[str]:
    return []


@pytest.fixture
def tools(ran):
    @tool
    def echo(text: str) -> str:
        """Repeat the text."""
        ran.append(f"echo:{text}")
        return text.upper()

    @tool
    def captioner(image: ImageInput) -> str:
        """Describe an image."""
        ran.append(f"captioner:{image.id}")
        return f"caption of {image.id}"

    return [echo, captioner]


def steps(n: int) -> list[Step]:
    return [Step(id=f"s{i}", tool="echo", args={"text": f"t{i}"}) for i in range(1, n + 1)]


@pytest.mark.parametrize(("plan", "problem"), [
    (Plan(steps=[Step(id="s1", tool="echo", args={"text": "a"}), Step(id="s2", tool="echo", args={"text": "{s7}"})]),
     "steps[1] (s2).args.text: refers to s7, which is not an earlier step (steps may only use the outputs of "
     "steps listed before them)"),
    (Plan(steps=[Step(id="s1", tool="echo", args={"text": "a"}), Step(id="s2", tool="shell", args={"cmd": "ls"})]),
     "unknown tool 'shell'; registered tools: captioner, echo"),
    (Plan(steps=[Step(id="s1", tool="echo", args={"text": "a"}), Step(id="s2", tool="captioner",
                                                                      args={"image": "image_9"})]),
     "'image_9' is not an attachment id"),
    (Plan(steps=[Step(id="s1", tool="echo", args={"text": "a", "device": "cuda"})]), "args.device"),
    (Plan(steps=steps(3)), "3 steps, more than the limit of 2"),
], ids=["dangling-reference", "unknown-tool", "unknown-attachment", "extra-arg", "over-max-steps"])
def test_a_custom_planners_invalid_plan_is_a_planning_error_and_nothing_runs(tools, ran, plan, problem):
    agent = Agent(tools=tools, planner=FixedPlanner(plan), settings=Settings(max_steps=2))
    with pytest.raises(PlanningError, match="FixedPlanner") as info:
        agent.chat("go")
    assert problem in str(info.value)
    assert ran == [], "a tool ran before the plan was valid"
    assert agent.conversation.turns == []


def test_a_custom_planners_valid_plan_runs(tools, ran):
    plan = Plan(steps=[Step(id="s1", tool="echo", args={"text": "a"}),
                       Step(id="s2", tool="echo", args={"text": "{s1}"})])
    reply = Agent(tools=tools, planner=FixedPlanner(plan)).chat("go")
    assert [s.content for s in reply.steps] == ["A", "A"] and ran == ["echo:a", "echo:A"]


# ------------------------------------------------------------------ max_steps at its boundary ---
@pytest.mark.parametrize("limit", [0, 1, 3])
def test_validate_plan_allows_exactly_max_steps(tools, limit):
    by_name = {t.name: t for t in tools}
    assert validate_plan(Plan(steps=steps(limit)), by_name, {}, max_steps=limit).steps == steps(limit)
    with pytest.raises(PlanValidationError, match=f"{limit + 1} steps, more than the limit of {limit}"):
        validate_plan(Plan(steps=steps(limit + 1)), by_name, {}, max_steps=limit)


@pytest.mark.parametrize("limit", [2, 9])  # 9: past the planners' built-in default of 8
def test_custom_planner_tier_honours_max_steps(tools, ran, limit):
    settings = Settings(max_steps=limit)
    reply = Agent(tools=tools, planner=FixedPlanner(Plan(steps=steps(limit))), settings=settings).chat("go")
    assert len(reply.steps) == limit and all(s.ok for s in reply.steps)
    ran.clear()
    with pytest.raises(PlanningError, match=f"more than the limit of {limit}"):
        Agent(tools=tools, planner=FixedPlanner(Plan(steps=steps(limit + 1))), settings=settings).chat("go")
    assert ran == []


@pytest.mark.parametrize("limit", [2, 9])
def test_llm_tier_honours_max_steps(tools, ran, limit):
    def plan_json(n: int) -> str:
        return json.dumps({"steps": [s.model_dump() for s in steps(n)]})

    settings = Settings(max_steps=limit, planner_attempts=2)
    llm = ScriptedChatModel(responses=[plan_json(limit), "done"])
    reply = Agent(llm=llm, tools=tools, settings=settings).chat("go")
    assert len(reply.steps) == limit and all(s.ok for s in reply.steps)
    ran.clear()
    llm = ScriptedChatModel(responses=[plan_json(limit + 1)] * 2)
    with pytest.raises(PlanningError, match=f"more than the limit of {limit}"):
        Agent(llm=llm, tools=tools, settings=settings).chat("go")
    assert ran == [] and f"more than the limit of {limit}" in llm.prompt(1)  # the re-ask said why


@pytest.mark.parametrize("limit", [2, 9])
def test_no_llm_tier_honours_max_steps(tools, ran, media, limit):
    photos = [media.png(color=COLOURS[i], name=f"p{i}.png") for i in range(limit + 1)]
    settings = Settings(max_steps=limit)
    reply = Agent(tools=tools, settings=settings).chat("describe", attachments=photos[:limit])
    assert reply.planner == "defaults" and len(reply.steps) == limit and all(s.ok for s in reply.steps)
    ran.clear()
    with pytest.raises(PlanningError, match=f"{limit + 1} steps, more than the limit of {limit}"):
        Agent(tools=tools, settings=settings).chat("describe", attachments=photos)
    assert ran == []


def test_router_tier_honours_max_steps(media):
    pytest.importorskip("sentence_transformers", reason="the router needs the 'router' extra")
    from support.routing_cases import routing_tools

    from polymodal import Attachment, Router

    tools = routing_tools()
    attachments = {"audio_1": Attachment.from_path(media.wav()).with_id("audio_1"),
                   "image_1": Attachment.from_path(media.png()).with_id("image_1")}
    text = "Transcribe the audio and describe the photo."

    def request(limit: int) -> PlanningRequest:
        return PlanningRequest(text=text, conversation=ConversationView.of(attachments),
                               new_attachment_ids=list(attachments), max_steps=limit)

    router = Router()
    two = router.route(request(2), tools)
    assert two.plan is not None and len(two.plan.steps) == 2
    one = router.route(request(1), tools)
    assert one.plan is None and "more than the limit of 1" in one.reason  # handed on, never cut to one clause


def test_an_unknown_attachment_is_named_with_the_ones_that_exist(tools, media):
    from polymodal import Attachment

    by_name = {t.name: t for t in tools}
    plan = Plan(steps=[Step(id="s1", tool="captioner", args={"image": "image_3"})])
    with pytest.raises(PlanValidationError, match=r"'image_3' is not an attachment id of this conversation "
                                                  r"\(attachments: none\)"):
        validate_plan(plan, by_name, {})
    attachments = {i: Attachment.from_path(media.png(name=f"{i}.png", color=c)).with_id(i)
                   for i, c in [("image_2", (1, 2, 3)), ("image_1", (4, 5, 6))]}
    with pytest.raises(PlanValidationError, match=r"\(attachments: image_1, image_2\)"):
        validate_plan(plan, by_name, attachments)


def test_the_default_limit_is_eight_steps(tools):
    by_name = {t.name: t for t in tools}
    assert len(validate_plan(Plan(steps=steps(8)), by_name, {}).steps) == 8
    with pytest.raises(PlanValidationError, match="9 steps, more than the limit of 8"):
        validate_plan(Plan(steps=steps(9)), by_name, {})
    with pytest.raises(PlanValidationError, match="unknown tool 'echo'; registered tools: none"):
        validate_plan(Plan(steps=steps(1)), {}, {})


@pytest.fixture
def media_tools(tools):
    from polymodal.tools import ClipMatcher, VisualQA

    @tool
    def paint(color: str) -> Image.Image:
        """Paint a square of one colour."""
        return Image.new("RGB", (8, 8), color)

    # Model tools load nothing to validate a plan.
    return {t.name: t for t in [*tools, paint, ClipMatcher(model="/never/loaded"), VisualQA(model="/never/loaded")]}


def test_a_step_that_makes_an_image_feeds_an_image_argument(media_tools, media):
    from polymodal import Attachment

    image = {"image_1": Attachment.from_path(media.png()).with_id("image_1")}
    plan = Plan(steps=[Step(id="s1", tool="paint", args={"color": "red"}),
                       Step(id="s2", tool="captioner", args={"image": "s1"}),
                       Step(id="s3", tool="clip_matcher", args={"images": ["s1", "image_1"], "labels": ["a"]})])
    assert validate_plan(plan, media_tools, image) is plan


@pytest.mark.parametrize(("args", "problem"), [
    ({"images": ["s1", "image_9"], "labels": ["a"]}, "steps[1] (s2).args.images: 'image_9' is not an attachment id"),
    ({"images": ["image_1", "audio_1"], "labels": ["a"]}, "steps[1] (s2).args.images: audio_1 is audio, but this "
                                                          "argument takes image"),
    ({"images": ["s1", "s0"], "labels": ["a"]}, "steps[1] (s2).args.images: refers to s0"),
], ids=["unknown-after-a-step", "wrong-modality-in-a-list", "dangling-in-a-list"])
def test_every_item_of_a_list_argument_is_checked(media_tools, media, args, problem):
    from polymodal import Attachment

    attachments = {"image_1": Attachment.from_path(media.png()).with_id("image_1"),
                   "audio_1": Attachment.from_path(media.wav()).with_id("audio_1")}
    plan = Plan(steps=[Step(id="s1", tool="paint", args={"color": "red"}),
                       Step(id="s2", tool="clip_matcher", args=args)])
    with pytest.raises(PlanValidationError) as info:
        validate_plan(plan, media_tools, attachments)
    assert any(line.startswith(problem) for line in info.value.problems), info.value.problems


def test_schema_problems_name_the_nested_field_and_nothing_else(media_tools, media):
    from polymodal import Attachment

    image = {"image_1": Attachment.from_path(media.png()).with_id("image_1")}
    plan = Plan(steps=[Step(id="s1", tool="visual_qa", args={"image": "image_1", "questions": ["ok?", 3]})])
    with pytest.raises(PlanValidationError) as info:
        validate_plan(plan, media_tools, image)
    assert info.value.problems == ["steps[0] (s1).args.questions.1: Input should be a valid string (tool visual_qa)"]
    not_an_id = Plan(steps=[Step(id="s1", tool="captioner", args={"image": 3})])
    with pytest.raises(PlanValidationError) as info:
        validate_plan(not_an_id, media_tools, image)
    assert info.value.problems == ["steps[0] (s1).args.image: Input should be a valid string (tool captioner)"]


def test_a_function_tools_return_annotation_says_what_a_later_step_receives():
    from polymodal import Attachment, AudioInput
    from polymodal.media import Modality

    def make(returns):
        def fn(text: str):
            """Make something."""

        fn.__annotations__["return"] = returns
        return tool(fn).output_modality

    assert [make(r) for r in (Image.Image, AudioInput, str, Attachment)] == [
        Modality.IMAGE, Modality.AUDIO, Modality.TEXT, Modality.TEXT]
