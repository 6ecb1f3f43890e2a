"""Cross-request micro-batching on real tiny checkpoints: concurrent calls share forward passes.

Each test starts its callers together behind a barrier and gives the tool a generous
``max_wait_ms``, so that coalescing is certain rather than a race; forward passes are counted on
the real model (a forward hook on its vision or audio encoder), not on polymodal's own stats.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image

from polymodal import Agent, Attachment, Plan, Settings, Step, ToolError
from polymodal.agent.planner import PlanOutcome
from polymodal.runtime.batching import MicroBatcher, batcher_for
from polymodal.runtime.calls import Deadline, ModelCall
from polymodal.runtime.turns import request_in_flight
from polymodal.tools import Captioner, ClipMatcher, ImageGenerator, Transcriber, VisualQA
from polymodal.tools.base import ToolContext, using_context


def together(n: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` for i < n on n threads released at the same moment; results in order."""
    barrier = threading.Barrier(n)

    def go(i: int) -> Any:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


@contextlib.contextmanager
def counting_forwards(module: Any) -> Iterator[list[int]]:
    """Batch sizes of every real forward of ``module`` while the block runs (a forward pre-hook)."""
    sizes: list[int] = []

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        first = args[0] if args else next(iter(kwargs.values()))
        sizes.append(int(first.shape[0]))

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield sizes
    finally:
        handle.remove()


@pytest.fixture
def images() -> list[Attachment]:
    """Eight noise images: a tiny random model tells them apart (it gives solid colours one caption)."""
    rng = np.random.default_rng(0)
    return [Attachment.from_image(Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)), f"n{i}.png")
            for i in range(8)]


def test_concurrent_captions_share_forward_passes_and_each_caller_gets_its_own(tiny_models, images):
    model = str(tiny_models.path("blip-caption-varied"))
    alone = Captioner(model=model, max_new_tokens=6, micro_batching=False)
    expected = [alone.execute(image=image).content for image in images]
    assert len(set(expected)) > 1, "distinct inputs must give distinct captions for this check to mean anything"

    shared = Captioner(model=model, max_new_tokens=6, max_wait_ms=300)
    vision = shared.bundle().model.vision_model
    with counting_forwards(vision) as sizes:
        got = together(len(images), lambda i: shared.execute(image=images[i]).content)
    assert got == expected
    assert sum(sizes) == len(images) and len(sizes) < len(images), sizes


@pytest.mark.parametrize("kind", ["visual_qa", "clip_matcher", "transcriber"])
def test_coalesced_outputs_equal_one_by_one(kind, tiny_models, media, images):
    if kind == "visual_qa":
        make: Callable[..., Any] = lambda **kw: VisualQA(model=str(tiny_models.path("blip-vqa")),  # noqa: E731
                                                        max_new_tokens=5, **kw)
        questions = ["what colour?", "is it red?", "how many things are there in this picture?", "why?"]
        calls = [{"image": images[i], "question": questions[i % 4]} for i in range(len(images))]
    elif kind == "clip_matcher":
        make = lambda **kw: ClipMatcher(model=str(tiny_models.path("clip")), **kw)  # noqa: E731
        labels = [["a cat", "a dog"], ["red", "green", "blue"], ["a cat", "a very small house on a hill"]]
        calls = [{"images": [images[i]], "labels": labels[i % 3]} for i in range(len(images))]
    else:
        make = lambda **kw: Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=8,  # noqa: E731
                                        **kw)
        clips = [Attachment.from_path(media.wav(seconds=0.5 + 0.25 * i, freq=200.0 + 60 * i, name=f"a{i}.wav"))
                 for i in range(4)]
        calls = [{"audio": clip} for clip in clips]
    alone = make(micro_batching=False)
    expected = [alone.execute(**call) for call in calls]
    shared = make(max_wait_ms=300)
    got = together(len(calls), lambda i: shared.execute(**calls[i]))
    stats = batcher_for(shared).stats
    assert stats.calls < len(calls), "the calls were not coalesced"
    for want, have in zip(expected, got, strict=True):
        if kind == "clip_matcher":
            assert have.artifact.labels == want.artifact.labels
            np.testing.assert_allclose(have.artifact.probabilities, want.artifact.probabilities, atol=1e-5)
        elif kind == "transcriber":
            assert have.content == want.content
            assert have.artifact.segments == want.artifact.segments
        else:
            assert have.content == want.content


def test_a_bad_item_fails_alone_and_its_batch_mates_answer(tiny_models, images):
    vqa = VisualQA(model=str(tiny_models.path("blip-vqa")), max_new_tokens=4, max_wait_ms=300)
    long_question = " ".join(["why"] * 200)  # past the tiny text model's 64 positions: its forward fails
    questions = ["what colour?", long_question, "is it red?", "what is it?"]

    def ask(i: int) -> Any:
        try:
            return vqa.execute(image=images[i], question=questions[i]).content
        except ToolError as exc:
            return exc

    alone = VisualQA(model=str(tiny_models.path("blip-vqa")), max_new_tokens=4, micro_batching=False)
    wanted = {i: alone.execute(image=images[i], question=questions[i]).content for i in (0, 2, 3)}
    # The batcher stops waiting once no caller is still preparing; on a loaded machine the bad caller's
    # thread may start after its mates' batch has gone. Every round must answer right; at least one
    # (of a few) must have put the bad item into a shared batch, and that batch was then isolated.
    for _round in range(5):
        got = together(4, ask)
        assert isinstance(got[1], ToolError) and "visual_qa" in str(got[1])
        assert {i: got[i] for i in (0, 2, 3)} == wanted
        if batcher_for(vqa).stats.isolated >= 1:
            break
    assert batcher_for(vqa).stats.isolated >= 1


def test_a_caller_past_its_deadline_is_dropped_and_does_not_cancel_the_others():
    release = threading.Event()
    ran: list[list[int]] = []

    def run(items: list[int], _call: ModelCall) -> list[int]:
        ran.append(list(items))
        if items == [0]:
            release.wait(5)  # the model is busy with an earlier call while the others queue
        return [i * 10 for i in items]

    batcher = MicroBatcher(run, max_batch=8, max_wait_ms=0, name="test")
    first = threading.Thread(target=batcher.submit, args=([0],))
    first.start()
    while not ran:
        time.sleep(0.001)
    results: dict[str, Any] = {}

    def late() -> None:
        try:
            results["late"] = batcher.submit([1], ModelCall(deadline=Deadline.after(0.05)))
        except TimeoutError as exc:
            results["late"] = exc

    def patient() -> None:
        results["patient"] = batcher.submit([2, 3])

    threads = [threading.Thread(target=late), threading.Thread(target=patient)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # the late caller's deadline passes while it waits in the queue
    release.set()
    for thread in [first, *threads]:
        thread.join(5)
    assert results["patient"] == [20, 30]
    assert isinstance(results["late"], TimeoutError)
    assert [1] not in ran and 1 not in ran[-1], "a call nobody waits for never reaches the model"


def test_options_that_cannot_share_a_forward_are_batched_apart(tiny_models, media):
    transcriber = Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=6, max_wait_ms=300)
    clip = Attachment.from_path(media.wav(seconds=1.0))
    languages = ["en", None, "en", None]  # forced vs detected: two generate calls
    together(4, lambda i: transcriber.execute(audio=clip, language=languages[i]))
    stats = batcher_for(transcriber).stats
    assert stats.calls >= 2 and stats.largest <= 2, "inputs with different languages shared a generate call"


def test_progress_of_a_coalesced_diffusion_reaches_every_caller(tiny_models):
    generator = ImageGenerator(model=str(tiny_models.path("sd-tiny")), default_steps=2, max_wait_ms=300)
    reports: dict[int, list[str]] = {0: [], 1: []}

    both_in_flight = threading.Barrier(2)

    def generate(i: int) -> Any:
        # Two agent turns, both in flight before either calls: the batcher waits for the second
        # (two bare threads race: the first may submit before the second has started at all).
        ctx = ToolContext(attachments={}, progress=lambda message, _fraction: reports[i].append(message))
        with request_in_flight(), using_context(ctx):
            both_in_flight.wait()
            return generator.execute(prompt=f"a red square {i}", seed=i, width=32, height=32)

    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(generate, range(2)))
    assert batcher_for(generator).stats.largest == 2
    assert all(isinstance(o.artifact, Attachment) for o in outputs)
    assert reports[0] and reports[0] == reports[1], reports


class _Scripted:
    """A planner that returns one captioner step on the request's image (the LLM is not under test)."""

    def plan(self, request: Any, tools: Any, *, config: Any = None) -> PlanOutcome:
        image = request.new_attachment_ids[0]
        return PlanOutcome(plan=Plan(steps=[Step(id="s1", tool="captioner", args={"image": image})]),
                           tier="llm", llm_calls=0)


def test_concurrent_chats_of_one_agent_share_captioner_forwards(tiny_models, images):
    captioner = Captioner(model=str(tiny_models.path("blip-caption-varied")), max_new_tokens=6, max_wait_ms=300)
    agent = Agent(llm=None, tools=[captioner], planner=_Scripted(), settings=Settings())
    with counting_forwards(captioner.bundle().model.vision_model) as sizes:
        replies = together(6, lambda i: agent.run("caption this", [images[i]]))
    alone = Captioner(model=str(tiny_models.path("blip-caption-varied")), max_new_tokens=6, micro_batching=False)
    assert [r.steps[0].content for r in replies] == [alone.execute(image=images[i]).content for i in range(6)]
    assert len(sizes) < 6, sizes


def test_a_lone_request_does_not_wait_for_company(tiny_models, images):
    """The wait bound is a minute here: only the batcher's "nobody else can join" rule lets it go at once."""
    captioner = Captioner(model=str(tiny_models.path("blip-caption-varied")), max_new_tokens=4, max_wait_ms=60_000)
    agent = Agent(llm=None, tools=[captioner], planner=_Scripted())
    captioner.bundle()
    started = time.monotonic()
    reply = agent.chat("caption this", [images[0]])
    assert reply.steps[0].ok and time.monotonic() - started < 30
