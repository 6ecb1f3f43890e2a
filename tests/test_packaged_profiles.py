"""Packaged models (found by importlib, Whisper assembled and pinned) and model profiles.

Profiles are resolved without loading anything, so most of these run in milliseconds; the
Whisper assembly copies 145 MB once into a temp cache.
"""

from __future__ import annotations

import hashlib
import time

import pytest
from support.offline_models import needs_offline_models, use_test_cache

from polymodal import ConfigurationError, packaged
from polymodal.agent import Agent
from polymodal.profiles import PROFILES, build_agent, build_tools, select
from polymodal.tools import Transcriber


@needs_offline_models
def test_whisper_base_is_assembled_atomically_and_pinned(tmp_path):
    started = time.perf_counter()
    folder = packaged.whisper_base(tmp_path)
    assembled_in = time.perf_counter() - started
    model = folder / "model.bin"
    assert model.stat().st_size == packaged.WHISPER_BASE_BYTES
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert digest == packaged.WHISPER_BASE_SHA256
    assert {p.name for p in folder.iterdir()} == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    assert [p.name for p in tmp_path.iterdir()] == ["whisper-base-ct2"]  # no temp folder left behind

    started = time.perf_counter()
    assert packaged.whisper_base(tmp_path) == folder
    assert time.perf_counter() - started < assembled_in  # reused, not rebuilt

    with open(model, "r+b") as fh:  # a truncated model (a crash of an older version, a full disk) is rebuilt
        fh.truncate(1000)
    assert packaged.whisper_base(tmp_path).joinpath("model.bin").stat().st_size == packaged.WHISPER_BASE_BYTES


@needs_offline_models
def test_packaged_specs_resolve_to_wheel_folders():
    minilm = packaged.resolve("packaged:minilm")
    assert "site-packages" in minilm or "dist-packages" in minilm
    assert (packaged.minilm() / "modules.json").is_file()
    assert packaged.resolve("openai/whisper-base") == "openai/whisper-base"
    with pytest.raises(ConfigurationError, match="unknown packaged model 'packaged:nope'"):
        packaged.resolve("packaged:nope")


def test_T5_missing_wheel_names_the_extra(monkeypatch):
    monkeypatch.setattr(packaged, "package_dir", lambda name: None)
    with pytest.raises(ConfigurationError, match=r"pip install 'polymodal\[offline-models\]'"):
        packaged.resolve("packaged:whisper-base")


def test_profile_precedence_profile_config_env_overrides(tmp_path):
    config = tmp_path / "polymodal.toml"
    config.write_text('profile = "default"\n[tools.captioner]\nmodel = "/models/from-config"\n'
                      '[tools.transcriber]\nmodel = "/models/whisper-config"\n'
                      '[tools.image_generator]\nenabled = false\n')
    env = {"POLYMODAL_MODEL_TRANSCRIBER": "/models/whisper-env", "POLYMODAL_PROFILE": "offline"}
    selection = select(config=config, env=env, overrides={"visual_qa": "/models/vqa-arg"})
    assert selection.profile == "default" and "polymodal.toml" in selection.reason  # the file beats the env
    tools = selection.tools
    assert tools["captioner"].kwargs["model"] == "/models/from-config"
    assert tools["transcriber"].kwargs["model"] == "/models/whisper-env"  # env beats the file
    assert tools["transcriber"].source == "environment"
    assert tools["visual_qa"].kwargs["model"] == "/models/vqa-arg"
    assert not tools["image_generator"].enabled
    assert tools["clip_matcher"].kwargs["model"] == PROFILES["default"].tools["clip_matcher"]["model"]

    assert select(env={"POLYMODAL_PROFILE": "offline"}).profile == "offline"
    assert select("default", env={"POLYMODAL_PROFILE": "offline"}).profile == "default"


def test_offline_profile_leaves_out_tools_without_packaged_models():
    selection = select("offline", env={})
    enabled = {name for name, choice in selection.tools.items() if choice.enabled}
    assert enabled == {"transcriber", "ocr"}
    assert selection.tools["captioner"].note == "no packaged model"
    assert selection.router == "packaged:minilm"
    # Naming a model for a left-out tool turns it on.
    assert select("offline", {"captioner": "/models/blip"}, env={}).tools["captioner"].enabled


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "gpu-max"}, "unknown profile 'gpu-max'"),
        ({"overrides": {"shell": "x"}}, "unknown tool 'shell'"),
        ({"config": "/nonexistent/polymodal.toml"}, "does not exist"),
    ],
)
def test_bad_selection_is_a_configuration_error(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        select(**kwargs)


def test_bad_config_files_name_the_file(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("profile = \n")
    with pytest.raises(ConfigurationError, match="broken.toml.*not valid TOML"):
        select(config=broken)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('modle = "x"\n')
    with pytest.raises(ConfigurationError, match=r"unknown keys \['modle'\]"):
        select(config=unknown)


def test_a_setting_the_tool_does_not_have_is_refused(tiny_models):
    with pytest.raises(ConfigurationError, match="tool 'transcriber' has no setting 'beam'"):
        build_tools("offline", {"transcriber": {"model": str(tiny_models.path("whisper-asr")), "beam": 3}})


@needs_offline_models
def test_build_tools_offline_gives_a_faster_whisper_transcriber_and_notes_missing_tools():
    use_test_cache()
    notes: list[str] = []
    tools = {t.name: t for t in build_tools("offline", notes=notes, device="cpu")}
    transcriber = tools["transcriber"]
    assert isinstance(transcriber, Transcriber)
    assert transcriber.resolved_backend() == "faster-whisper" and transcriber.device == "cpu"
    assert (packaged.cache_dir() / "whisper-base-ct2").samefile(transcriber.model)
    from polymodal.tools.builtin.ocr import OCR

    assert isinstance(tools["ocr"], OCR) and notes == []  # every tool of the profile was built
    assert set(tools) == {"transcriber", "ocr"}  # tools with no packaged model are left out


def test_build_agent_uses_the_profile_tools(tiny_models):
    whisper = str(tiny_models.path("whisper-asr"))
    agent = build_agent("default", overrides={"transcriber": whisper})
    assert isinstance(agent, Agent)
    assert agent.tools["transcriber"].model == whisper
    assert agent.tools["transcriber"].resolved_backend() == "transformers"  # a transformers folder stays there


@needs_offline_models
def test_a_transformers_folder_overrides_the_offline_transcriber(tiny_models):
    whisper = str(tiny_models.path("whisper-asr"))
    (transcriber,) = [t for t in build_tools("offline", {"transcriber": whisper}) if t.name == "transcriber"]
    assert transcriber.model == whisper and transcriber.resolved_backend() == "transformers"


@needs_offline_models
def test_with_no_profile_named_offline_is_chosen_without_a_hub_or_gpu(monkeypatch):
    offline = select(env={"HF_HUB_OFFLINE": "1"})
    assert offline.profile == "offline" and "HF_HUB_OFFLINE" in offline.reason
    import polymodal.profiles as profiles

    monkeypatch.setattr(profiles, "_has_cuda", lambda: True)
    assert select(env={}).profile == "default"  # a GPU with hub access gets the bigger models
    monkeypatch.setattr(profiles, "_has_cuda", lambda: False)
    assert select(env={}).reason.startswith("no profile named, no CUDA GPU")


def test_the_router_model_is_set_per_profile_and_can_be_turned_off():
    from polymodal.profiles import build_router

    assert select("offline", env={}).router == "packaged:minilm"
    assert select("default", env={}).router is None  # the Router's own default
    off = select("offline", env={"POLYMODAL_ROUTER_MODEL": "none"})
    assert off.router == "none" and build_router(off) is None
