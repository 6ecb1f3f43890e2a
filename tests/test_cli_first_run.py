"""The command line as a new user meets it (issue 14): true exit codes, options checked before any
work, prompts from stdin or a file, a chat that knows its commands, help and tables that read well.

Everything runs in-process through typer's runner on tiny checkpoints; a hub id is simply missing
(the test bed sets HF_HUB_OFFLINE=1), which is how a model that cannot be had looks to a user.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from polymodal.commands import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, app
from polymodal.runtime.cache import model_cache

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
NO_ROUTER = {"POLYMODAL_ROUTER_MODEL": "none", "COLUMNS": "100"}


@pytest.fixture(scope="module")
def whisper(tiny_models) -> str:
    return f"transcriber={tiny_models.path('whisper-asr')}"


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, ["run", *args, "--profile", "default"], input=stdin, env=NO_ROUTER)


def test_run_exit_codes_say_whether_the_request_was_answered(whisper, media):
    tone, photo = str(media.wav(seconds=1.0)), str(media.png())
    answered = run("transcribe this", "-a", tone, "-m", whisper)
    assert answered.exit_code == EXIT_OK, answered.output
    # The captioner's hub model is missing: the transcript still answers half of the request.
    partial = run("transcribe and describe", "-a", tone, "-a", photo, "-m", whisper)
    assert partial.exit_code == EXIT_PARTIAL, partial.output
    assert "1 of 2 step(s) did not succeed: s2 (captioner)" in partial.stderr
    failed = run("describe", "-a", photo)
    assert failed.exit_code == EXIT_FAILED and "Captioner of photo.png: failed" in failed.stdout
    nothing = run("hello")  # no tool applies and no LLM: not an answer
    assert nothing.exit_code == EXIT_FAILED and nothing.stdout.startswith("No tool applies")


@pytest.mark.parametrize(("options", "message"), [
    (["--device", "tpu"], "--device 'tpu' is not a device"),
    (["--model", "nosuch=x"], "unknown tool 'nosuch'"),
    (["--model", "captioner=./no/such/folder"], "model folder './no/such/folder' does not exist"),
    (["--model", "transcriber=packaged:nope"], "unknown packaged model 'packaged:nope'"),
    (["--prompt-file", "/no/such/prompt.txt"], "cannot be read"),
])
def test_bad_options_are_usage_errors_found_before_any_work(options, message, media):
    loads = model_cache().loads
    result = runner.invoke(app, ["run", *([] if "--prompt-file" in options else ["hi"]), "-a", str(media.wav()),
                                 *options, "--profile", "default"], env=NO_ROUTER)
    assert result.exit_code == EXIT_USAGE, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert model_cache().loads == loads  # nothing was loaded


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_refused_up_front(media):
    result = run("transcribe", "-a", str(media.wav()), "--device", "cuda")
    assert result.exit_code == EXIT_USAGE and "no usable CUDA GPU" in result.stderr


def test_the_prompt_can_come_from_stdin_or_a_file(tiny_models, whisper, media, tmp_path):
    vqa = f"visual_qa={tiny_models.path('blip-vqa')}"
    from_stdin = run("-", "-a", str(media.png()), "-m", vqa, "--json", stdin="what colour is the square?")
    assert from_stdin.exit_code == EXIT_OK, from_stdin.output
    (step,) = json.loads(from_stdin.stdout)["steps"]  # a question about an image: visual QA, asked what we sent
    assert step["tool"] == "visual_qa" and step["args"]["question"] == "what colour is the square?"
    prompt_file = tmp_path / "prompt.txt"  # 360 kB: past the 128 kB a single command-line argument may have
    prompt_file.write_text("transcribe this voice note; " + "(context) " * 36_000, encoding="utf-8")
    from_file = run("-f", str(prompt_file), "-a", str(media.wav()), "-m", whisper)
    assert from_file.exit_code == EXIT_OK, from_file.output
    both = run("hi", "-f", str(prompt_file))
    assert both.exit_code == EXIT_USAGE and "not both" in both.stderr


def test_chat_knows_its_commands_and_sends_none_to_the_model(whisper, media):
    tone = media.wav(seconds=1.0)
    script = f"/help\n/frobnicate\n/attach\n/attach {tone}\nwhat does it say?\n//quit is a message\n"
    result = runner.invoke(app, ["chat", "--profile", "default", "-m", whisper], input=script, env=NO_ROUTER)
    assert "/attach PATH" in result.stderr and "/reset" in result.stderr  # /help
    assert "unknown command /frobnicate" in result.stderr
    assert "usage: /attach PATH" in result.stderr and "'.' is a directory" not in result.stderr
    answers = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(answers) == 2, answers  # the question, and the //-escaped message; no command reached the model
    assert answers[1].startswith("No tool applies")  # "/quit is a message" was sent, not obeyed
    assert result.exit_code == EXIT_FAILED  # the worst turn of the session: the escaped message got no answer


def test_help_shows_placeholders_not_python_types():
    for command in ("run", "chat", "batch"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0
        assert "list[" not in result.stdout and "<bool>  print" not in result.stdout, result.stdout
        assert "TOOL=MODEL" in result.stdout


def test_models_prints_every_name_whole_at_80_columns(tmp_path):
    folder = tmp_path / ("a-model-folder-with-a-long-name-" + "x" * 40)
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    result = runner.invoke(app, ["models", "--profile", "default", "--model", f"captioner={folder}"],
                           env={"COLUMNS": "80"})
    assert result.exit_code == EXIT_OK, result.output
    assert str(folder) in result.stdout and "emotion_recognizer" in result.stdout  # not cut, not folded
    assert "…" not in result.stdout


def test_errors_name_the_tool_once(media):
    from polymodal.tools import Captioner

    text = Captioner(model="org/missing").invoke({"image": str(media.png())})  # as a LangChain agent calls it
    assert text.startswith("captioner: model 'org/missing'") and "captioner: captioner" not in text


def test_doctor_has_a_row_per_extra_and_checks_the_device_models_will_use():
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = set(pyproject["project"]["optional-dependencies"]) - {"all", "dev"}
    result = runner.invoke(app, ["doctor", "--device", "tpu"], env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_OK, result.output
    for extra in extras:
        assert f"extra [{extra}]" in result.stdout, extra
    assert "NO  --device 'tpu' is not a device" in result.stdout  # the device is checked, not assumed
    assert "offline (HF_HUB_OFFLINE=1)" in result.stdout  # a setting, not a probe: the test bed is offline


def test_a_batch_rerun_still_exits_1_for_failures_recorded_by_the_earlier_run(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "broken", "prompt": \n', encoding="utf-8")  # a bad line: a recorded failure
    first = runner.invoke(app, ["batch", str(jobs), "--profile", "default"], env=NO_ROUTER)
    assert first.exit_code == EXIT_FAILED, first.output
    assert (tmp_path / "jobs.results.jsonl").is_file()  # the documented default output
    again = runner.invoke(app, ["batch", str(jobs), "--profile", "default"], env=NO_ROUTER)
    assert again.exit_code == EXIT_FAILED and "skipping 1 job(s)" in again.stderr
    missing = runner.invoke(app, ["batch", str(tmp_path / "nope.jsonl")], env=NO_ROUTER)
    assert missing.exit_code == EXIT_USAGE


def test_template_answers_title_tools_as_people_write_them():
    from polymodal.agent.executor import StepResult
    from polymodal.agent.fusion import template_answer

    results = [StepResult(id="s1", tool="ocr", status="ok", content="OPEN"),
               StepResult(id="s2", tool="visual_qa", status="ok", content="red"),
               StepResult(id="s3", tool="clip_matcher", status="ok", content="a cat")]
    text = template_answer(results, {})
    assert text.splitlines()[0] == "OCR:" and "Visual QA:" in text and "CLIP matcher:" in text
    assert "Ocr" not in text


def test_outcome_counts_steps_and_missing_tools():
    from polymodal.agent import Plan, Reply, StepResult

    ok, bad = StepResult(id="s1", tool="ocr", status="ok"), StepResult(id="s2", tool="transcriber", status="error")
    assert Reply(text="", plan=Plan(steps=[]), fusion="template").outcome == "failed"  # no tool applies, no LLM
    assert Reply(text="", plan=Plan(steps=[]), fusion="llm").outcome == "answered"  # the LLM answered directly
    assert Reply(text="", plan=Plan(steps=[]), steps=[ok, bad]).outcome == "partial"
    assert Reply(text="", plan=Plan(steps=[]), steps=[bad]).outcome == "failed"
    # A request that needed a tool the agent lacks is not fully answered (the text says how to get it).
    assert Reply(text="", plan=Plan(steps=[]), fusion="llm", missing_tools=["captioner"]).outcome == "failed"
    assert Reply(text="", plan=Plan(steps=[]), steps=[ok], missing_tools=["captioner"]).outcome == "partial"
