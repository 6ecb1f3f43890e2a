"""``polymodal eval``: reading TaskBench and polymodal cases, TaskBench's metrics, exact plans, the CLI.

The metrics are checked against counts worked out by hand; the planners here need no model (the
modality defaults, a scripted chat model), so only the scoring is under test. The router's own
scores on the tables are in tests/test_chaining.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.fake_llm import ScriptedChatModel

from polymodal.agent.plan import Plan, Step
from polymodal.agent.planner import DefaultPlanner, LLMPlanner
from polymodal.errors import ConfigurationError
from polymodal.evaluation import TASKBENCH_TOOLS, Counts, evaluate, load_cases, make_planner, parse_case, score_plan
from polymodal.media import Modality
from polymodal.tools import default_tools

SUPPORT = Path(__file__).parent / "support"
SAMPLE = SUPPORT / "taskbench_sample.jsonl"


@pytest.fixture(scope="module")
def tools() -> dict:
    return {tool.name: tool for tool in default_tools()}  # built, never loaded


def plan(*steps: tuple[str, dict]) -> Plan:
    return Plan(steps=[Step(id=f"s{i}", tool=tool, args=args) for i, (tool, args) in enumerate(steps, start=1)])


def case(line: dict, mapping: dict | None = None):
    return parse_case(json.dumps(line), "test:1", mapping)


# ------------------------------------------------------------------------ reading ---
def test_taskbench_file_names_become_attachments_and_node_refs_become_uses():
    cases = {c.id: c for c in load_cases(SAMPLE)}
    chain = cases["27826108"]  # Image Classification(example.jpg) -> Text-to-Speech(<node-0>)
    assert chain.source == "taskbench" and chain.attachments == ((Modality.IMAGE, "example.jpg"),)
    assert [(s.label, s.uses) for s in chain.steps] == [("Image Classification", ("image_1",)),
                                                        ("Text-to-Speech", ("s1",))]
    assert chain.steps[0].tools == {"clip_matcher", "captioner"}
    assert cases["17990278"].attachments == ()  # a quoted sentence is not a file
    assert cases["33446682"].attachments == ((Modality.AUDIO, "example.wav"),)


def test_a_task_with_a_tool_polymodal_lacks_is_skipped_with_its_reason():
    task = {"id": "t", "instruction": "Translate 'hello' into French and read it aloud.",
            "task_nodes": [{"task": "Translation", "arguments": ["hello"]},
                           {"task": "Text-to-Speech", "arguments": ["<node-0>"]}], "task_links": []}
    assert "Translation" in case(task).skipped
    mood = {"id": "m", "instruction": "What is the mood of 'song.wav'?",
            "task_nodes": [{"task": "Audio Classification", "arguments": ["song.wav"]}]}
    genre = {**mood, "instruction": "Which genre is 'song.wav'?"}
    assert not case(mood).skipped and "Audio Classification" in case(genre).skipped  # emotion requests only


def test_the_mapping_can_be_replaced():
    task = json.loads(SAMPLE.read_text().splitlines()[6])  # Image-to-Text: "extract the text from it"
    assert case(task).steps[0].tools == {"captioner", "ocr"}
    strict = {**TASKBENCH_TOOLS, "Image-to-Text": frozenset({"captioner"})}
    assert case(task, strict).steps[0].tools == {"captioner"}


@pytest.mark.parametrize(("line", "problem"), [
    ("not json", "not JSON"),
    ('{"prompt": "x"}', "neither a TaskBench task"),
    ('{"request": "x", "attachments": ["pdf"]}', "attachment kind 'pdf'"),
    ('{"request": "x", "steps": [{"tool": "ocr", "uses": ["s1"]}]}', "not an earlier step"),
])
def test_a_bad_line_names_the_file_and_line(tmp_path, line, problem):
    path = tmp_path / "cases.jsonl"
    path.write_text('{"request": "fine"}\n\n' + line + "\n")
    with pytest.raises(ConfigurationError, match=rf"cases.jsonl:3: .*{problem}"):
        load_cases(path)


def test_a_missing_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_cases(tmp_path / "nope.jsonl")


# ------------------------------------------------------------------------ scoring ---
def test_node_and_edge_counts_follow_taskbench(tools):
    chain = next(c for c in load_cases(SAMPLE) if c.id == "27826108")
    right = plan(("captioner", {"image": "image_1"}), ("speech_synthesizer", {"text": "{s1}"}))
    score = score_plan(chain, right, tools)
    assert (score.nodes, score.edges, score.exact) == (Counts(2, 0, 0), Counts(1, 0, 0), True)
    unchained = plan(("captioner", {"image": "image_1"}), ("speech_synthesizer", {"text": "a cat"}))
    score = score_plan(chain, unchained, tools)
    assert (score.nodes, score.edges, score.exact) == (Counts(2, 0, 0), Counts(0, 0, 1), False)
    wrong = plan(("ocr", {"image": "image_1"}))
    assert score_plan(chain, wrong, tools).nodes == Counts(0, 1, 2)


def test_one_predicted_tool_counts_for_one_gold_tool_only(tools):
    both = case({"request": "x", "attachments": ["image"],
                 "steps": [{"tool": "captioner", "uses": ["image_1"]}, {"tool": "captioner", "uses": ["image_1"]}]})
    gold = case({"id": "g", "instruction": "Classify 'a.jpg' and describe 'a.jpg'",
                 "task_nodes": [{"task": "Image Classification", "arguments": ["a.jpg"]},
                                {"task": "Image-to-Text", "arguments": ["a.jpg"]}]})
    captions = plan(("captioner", {"image": "image_1"}))
    assert score_plan(gold, captions, tools).nodes == Counts(1, 0, 1)  # captioner may be either, not both
    assert score_plan(both, captions, tools).nodes == Counts(1, 0, 0)  # names are sets, as in TaskBench


def test_exact_ignores_order_and_ids_but_not_inputs_or_args(tools):
    expected = case({"request": "x", "attachments": ["video"],
                     "steps": [{"tool": "frame_grabber", "uses": ["video_1"], "args": {"at": 65}},
                               {"tool": "clip_matcher", "uses": ["s1"], "args": {"labels": ["cat", "dog"]}}]})
    good = Plan(steps=[Step(id="s1", tool="frame_grabber", args={"video": "video_1", "at": "1:05"}),
                       Step(id="s2", tool="clip_matcher", args={"images": ["s1"], "labels": ["a Dog", "a cat."]})])
    assert score_plan(expected, good, tools).exact
    other_time = good.model_copy(update={"steps": [good.steps[0].model_copy(update={"args": {"video": "video_1",
                                                                                              "at": 3}}),
                                                   good.steps[1]]})
    assert not score_plan(expected, other_time, tools).exact
    no_chain = plan(("frame_grabber", {"video": "video_1", "at": 65}), ("clip_matcher", {"images": ["video_1"],
                                                                                         "labels": ["cat", "dog"]}))
    assert not score_plan(expected, no_chain, tools).exact


def test_taskbench_self_reference_quirk_scores_without_crashing(tools):
    quirk = next(c for c in load_cases(SAMPLE) if c.id == "10085272")  # node 1 refers to <node-1>: itself
    assert quirk.steps[1].uses == ("s2",)
    score = score_plan(quirk, plan(("image_generator", {"prompt": "a sundown"}), ("captioner", {"image": "s1"}),
                                   ("ocr", {"image": "image_1"})), tools)
    assert score.nodes == Counts(3, 0, 0) and score.edges == Counts(0, 1, 1) and not score.exact


def test_pooled_f1_is_micro():
    pooled = Counts(3, 1, 0) + Counts(1, 0, 2)
    assert pooled == Counts(4, 1, 2) and pooled.f1 == pytest.approx(8 / 11)
    assert Counts().f1 == 1.0  # nothing expected, nothing planned


# ------------------------------------------------------------------------ running ---
def test_evaluate_pools_over_cases_with_the_modality_defaults(tools):
    report = evaluate(load_cases(SAMPLE), DefaultPlanner(), tools, name="defaults")
    summary = report.summary()
    assert summary["cases"] == 8 and summary["skipped"] == 0 and summary["llm_calls_per_request"] == 0
    nodes = sum((c.nodes for c in report.cases), Counts())
    assert summary["node_counts"] == {"tp": nodes.tp, "fp": nodes.fp, "fn": nodes.fn}
    assert summary["node_f1"] == round(100 * nodes.f1, 1)
    asr = next(c for c in report.cases if c.id == "33446682")
    assert asr.planned == ["transcriber(audio_1)"] and asr.exact and asr.tier == "defaults"
    assert json.loads(json.dumps(report.to_dict()))["cases"][0]["id"] == report.cases[0].id


def test_a_planner_that_fails_scores_an_empty_plan_and_records_why(tools):
    llm = ScriptedChatModel(responses=["prose"] * 20)
    report = evaluate(load_cases(SAMPLE)[:2], LLMPlanner(llm, max_attempts=2), tools)
    assert [c.tier for c in report.cases] == ["failed", "failed"] and all(c.llm_calls == 2 for c in report.cases)
    assert "no valid plan" in report.cases[0].error and report.nodes.tp == 0
    assert report.summary()["llm_calls_per_request"] == 2.0 and report.summary()["errors"] == 2


def test_the_llm_planner_needs_a_model():
    with pytest.raises(ConfigurationError, match="--llm"):
        make_planner("llm")
    with pytest.raises(ConfigurationError, match="unknown planner"):
        make_planner("oracle")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- CLI ---
def test_cli_eval_json_and_table(capsys):
    from polymodal.cli import main

    assert main(["eval", str(SAMPLE), "--planner", "defaults", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["planner"] == "defaults" and len(data["cases"]) == 8
    strict = ["--map", "Image-to-Text=captioner"]
    assert main(["eval", str(SAMPLE), "--planner", "defaults", *strict, "--show", "all"]) == 0
    shown = capsys.readouterr().out
    assert "node F1" in shown and "exact plans" in shown and "33446682" in shown


def test_cli_eval_errors_are_one_line(capsys, tmp_path):
    from polymodal.cli import main

    assert main(["eval", str(SAMPLE), "--planner", "llm"]) == 2  # a usage error (README's exit codes)
    assert "needs a chat model" in capsys.readouterr().err
    assert main(["eval", str(SAMPLE), "--show", "some"]) == 2
    assert "--show expects" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "none.jsonl")]) == 1
    assert "cannot be read" in capsys.readouterr().err
