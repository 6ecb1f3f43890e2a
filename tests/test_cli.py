"""The ``polymodal`` command through typer's runner and as a real subprocess.

The end-to-end runs use the real packaged Whisper base (offline profile); plumbing checks use the
tiny random Whisper through ``--model transcriber=<folder>`` so they cost no real model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from support.offline_models import (
    VOICE_NOTE,
    VOICE_NOTE_TEXT,
    needs_offline_models,
    use_test_cache,
    word_error_rate,
)
from typer.testing import CliRunner

from polymodal import cli
from polymodal.commands import app, safe

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def command_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env["POLYMODAL_CACHE"] = str(use_test_cache())
    return env


NO_ROUTER = {"POLYMODAL_ROUTER_MODEL": "none"}  # plumbing tests need no embedding model


def polymodal(*args: str, stdin: str | None = None, timeout: float = 120,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "polymodal.cli", *args], input=stdin, capture_output=True,
                          text=True, env={**command_env(), **(env or {})}, cwd=ROOT, timeout=timeout)


@pytest.mark.slow
@needs_offline_models
def test_run_answers_a_voice_note_with_the_real_packaged_whisper():
    started = time.perf_counter()
    done = polymodal("run", "What does this voice note say?", "-a", str(VOICE_NOTE))
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    wer = word_error_rate(VOICE_NOTE_TEXT, done.stdout)
    print(f"polymodal run (subprocess, offline profile): {seconds:.1f} s, WER {wer:.2%}: {done.stdout.strip()!r}")
    assert wer < 0.25, done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.slow
@needs_offline_models
def test_run_json_prints_the_whole_reply():
    use_test_cache()
    result = runner.invoke(app, ["run", "transcribe this", "-a", str(VOICE_NOTE), "--json", "--profile", "offline",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    reply = json.loads(result.stdout)
    assert reply["planner"] in ("defaults", "router") and reply["llm_calls"] == 0
    (step,) = reply["steps"]
    assert step["tool"] == "transcriber" and step["status"] == "ok"
    assert step["artifact"]["language"] == "en" and step["artifact"]["segments"]
    assert word_error_rate(VOICE_NOTE_TEXT, reply["text"]) < 0.25


def test_A9_R5_errors_are_one_escaped_line_and_debug_adds_the_traceback(tmp_path):
    evil = tmp_path / "[red]boom[bold]\x1b[2J.wav"
    evil.write_bytes(b"RIFF\x00\x00garbage")
    args = ["run", "what is said?", "-a", str(evil), "--profile", "default"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "[red]boom[bold]" in lines[0]  # rich markup printed literally
    assert "\x1b" not in result.stderr  # the escape sequence is shown as text, never sent to the terminal
    assert "Traceback" not in result.stderr
    debug = runner.invoke(app, [*args, "--debug"])
    assert debug.exit_code == 1 and "Traceback" in debug.stderr

    missing = runner.invoke(app, ["run", "hi", "-a", str(tmp_path / "nope.wav"), "--profile", "default"])
    assert missing.exit_code == 1 and "nope.wav" in missing.stderr
    bad_model = runner.invoke(app, ["run", "hi", "--model", "transcriber", "--profile", "default"])
    assert bad_model.exit_code == 2 and "--model expects TOOL=MODEL" in bad_model.stderr  # usage: nothing ran


def test_R5_A9_safe_keeps_text_and_escapes_terminal_controls():
    assert safe("line one\n\tline two [bold]") == "line one\n\tline two [bold]"
    assert safe("a\x1b[31mb\x00c\u202ed") == "a\\x1b[31mb\\x00c\\u202ed"


def test_chat_reads_stdin_and_attaches_mid_session(tiny_models, media):
    tone = media.wav(seconds=1.0)
    corrupt = media.corrupt(tone, keep_bytes=20, name="cut.wav")
    script = f"hello there\n/attach {corrupt}\n/attach {tone}\nwhat does it say?\n/reset\n/quit\n"
    result = runner.invoke(app, ["chat", "--profile", "default", "-m",
                                 f"transcriber={tiny_models.path('whisper-asr')}"], input=script, env=NO_ROUTER)
    assert result.exit_code == 1, result.output  # the worst turn: "hello there" got no answer
    assert "cut.wav" in result.stderr and "error:" in result.stderr  # a bad file is reported, the session goes on
    assert "attached audio" in result.stderr
    assert "conversation cleared" in result.stderr
    answers = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(answers) == 2, answers  # one reply per message, none for commands
    assert answers[0].startswith("No tool applies") and not answers[1].startswith("No tool applies")


def test_chat_in_a_real_subprocess_ends_at_end_of_input(tiny_models):
    done = polymodal("chat", "--profile", "default", stdin="hello\n", env=NO_ROUTER)
    assert done.returncode == 1, done.stderr  # its one turn got no answer
    assert done.stdout.strip().startswith("No tool applies to this request")
    assert done.stderr.endswith("you> \n")  # end of input leaves the terminal on a fresh line


@needs_offline_models
def test_models_and_doctor_report(tmp_path):
    result = runner.invoke(app, ["models", "--profile", "offline"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "profile: offline" in result.stdout and "packaged:whisper-base" in result.stdout
    assert "transcriber" in result.stdout and "no packaged model" in result.stdout
    config = tmp_path / "p.toml"
    config.write_text('[tools.transcriber]\nmodel = "/no/such/folder"\n')
    result = runner.invoke(app, ["models", "--profile", "offline", "--config", str(config)], env={"COLUMNS": "200"})
    assert "folder missing" in result.stdout
    doctor = runner.invoke(app, ["doctor"])
    assert doctor.exit_code == 0 and "torch" in doctor.stdout and "PyAV" in doctor.stdout


def test_T5_main_without_the_cli_extra_prints_the_install_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "typer", None)  # import typer now raises ImportError
    assert cli.main(["run", "hi"]) == 2
    assert "pip install 'polymodal[cli]'" in capsys.readouterr().err


SIGN_TEXT = "COFFEE SHOP Open daily from 7 to 19 Fresh bread every morning"


@pytest.mark.slow
@needs_offline_models
def test_run_reads_printed_text_with_the_packaged_ocr():
    from support.offline_models import EXAMPLES, char_error_rate

    use_test_cache()
    result = runner.invoke(app, ["run", "What does the sign say?", "-a", str(EXAMPLES / "sign.png"), "--json",
                                 "--profile", "offline"])
    assert result.exit_code == 0, result.output
    reply = json.loads(result.stdout)
    assert [step["tool"] for step in reply["steps"]] == ["ocr"]
    read = reply["steps"][0]["content"]
    cer = char_error_rate(SIGN_TEXT, read)
    print(f"OCR through polymodal run: CER {cer:.2%}: {read!r}")
    assert cer < 0.1, read


def test_generated_media_are_saved_and_their_paths_printed(tmp_path):
    from polymodal import Agent, tool

    @tool
    def draw_square(color: str) -> Image.Image:
        """Draw a square of one colour.

        Args:
            color: a colour name.
        """
        return Image.new("RGB", (8, 8), color)

    agent = Agent(tools=[draw_square], planner=_OneStep("draw_square", {"color": "red"}))
    reply = agent.chat("draw a red square")
    record = reply.to_record(tmp_path / "out")
    (saved,) = record["artifacts"]
    assert saved["kind"] == "image" and Path(saved["path"]).is_file()
    assert Image.open(saved["path"]).getpixel((0, 0)) == (255, 0, 0)
    json.dumps(record)  # the whole record is JSON-ready


class _OneStep:
    """A planner that always plans one fixed step (the plan is not what this test is about)."""

    def __init__(self, tool_name: str, args: dict) -> None:
        self.tool_name, self.args = tool_name, args

    def plan(self, request, tools, *, config=None):
        from polymodal.agent import Plan, Step
        from polymodal.agent.planner import PlanOutcome

        return PlanOutcome(plan=Plan(steps=[Step(id="s1", tool=self.tool_name, args=self.args)]), tier="defaults")


def test_llm_option_plans_with_the_local_llm(tiny_models):
    # The tiny random chat model answers every planning prompt with an empty string (greedy decoding
    # of a fixed checkpoint: the same every run), so the request fails after exactly the allowed asks.
    folder = str(tiny_models.path("qwen2-chat"))
    result = runner.invoke(app, ["run", "hello", "--llm", folder, "--profile", "default", "--json"], env=NO_ROUTER)
    assert "Traceback" not in result.stderr
    assert result.exit_code == 1, result.output
    assert "the planner LLM gave no valid plan in 3 attempts" in result.stderr
    assert "got prose: 'an empty answer'" in result.stderr
