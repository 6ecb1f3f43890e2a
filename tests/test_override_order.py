"""Which model a tool runs: the profile < the config file < ``POLYMODAL_MODEL_<TOOL>`` < ``--model``.

One tool is named at every level at once, so each level must beat the one below it; then the
real ``polymodal run`` shows that ``--model`` reaches the running tool over the environment.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from polymodal.commands import app
from polymodal.profiles import PROFILES, select

runner = CliRunner()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "polymodal.toml"
    path.write_text('[tools.transcriber]\nmodel = "/models/from-config"\n')
    return path


ENV = {"POLYMODAL_MODEL_TRANSCRIBER": "/models/from-env"}


@pytest.mark.parametrize(("use_config", "env", "override", "expected", "source"), [
    (False, {}, None, PROFILES["default"].tools["transcriber"]["model"], "profile default"),
    (True, {}, None, "/models/from-config", "polymodal.toml"),
    (True, ENV, None, "/models/from-env", "environment"),
    (False, ENV, None, "/models/from-env", "environment"),
    (True, ENV, "/models/from-argument", "/models/from-argument", "overrides"),
    (True, {}, "/models/from-argument", "/models/from-argument", "overrides"),
], ids=["profile", "config-beats-profile", "env-beats-config", "env-beats-profile", "argument-beats-env",
        "argument-beats-config"])
def test_each_level_beats_the_one_below(config, use_config, env, override, expected, source):
    selection = select("default", {"transcriber": override} if override else None,
                       config=config if use_config else None, env=env)
    choice = selection.tools["transcriber"]
    assert choice.kwargs["model"] == expected and source in str(choice.source)


def test_the_model_option_reaches_the_running_tool_over_the_environment(tiny_models, media, config):
    whisper = str(tiny_models.path("whisper-asr"))
    args = ["run", "transcribe this", "-a", str(media.wav(seconds=1.0)), "--json", "--profile", "default",
            "--config", str(config)]
    env = {"POLYMODAL_ROUTER_MODEL": "none", "POLYMODAL_MODEL_TRANSCRIBER": "/no/such/env-whisper"}
    chosen = runner.invoke(app, [*args, "--model", f"transcriber={whisper}"], env=env)
    assert chosen.exit_code == 0, chosen.output
    (step,) = json.loads(chosen.stdout)["steps"]
    assert step["tool"] == "transcriber" and step["status"] == "ok"
    without = runner.invoke(app, args, env=env)  # no --model: the environment's (missing) folder is used
    assert "/no/such/env-whisper" in without.output and "/models/from-config" not in without.output
