"""Loading a model, or one clear ConfigurationError: broken folders, devices, packaged names, quiet loads.

Issue 13.6 (broken model folders), issue 14.4 (``packaged:`` names accepted wherever a model is),
14.6 (a device this machine lacks is refused before any work) and 14.11 (no ``Loading weights`` bar).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from support.offline_models import needs_offline_models, use_test_cache

from polymodal import Attachment, Router
from polymodal.errors import ConfigurationError
from polymodal.runtime.cache import check_device
from polymodal.tools import Captioner, ImageGenerator, Transcriber


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Attachment:
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.new("RGB", (32, 32), "red").save(path)
    return Attachment.from_path(path)


def broken_copies(good: Path, root: Path) -> dict[str, Path]:
    """One copy of a working checkpoint per way a folder can be broken."""
    folders = {name: root / name for name in ("empty", "no_weights", "bad_config", "config_unreadable", "cut_weights")}
    folders["empty"].mkdir()
    for name in ("no_weights", "bad_config", "config_unreadable", "cut_weights"):
        shutil.copytree(good, folders[name])
    (folders["no_weights"] / "model.safetensors").unlink()
    (folders["bad_config"] / "config.json").write_text("{not json", encoding="utf-8")
    (folders["config_unreadable"] / "config.json").unlink()
    (folders["config_unreadable"] / "config.json").mkdir()  # reading it fails with an OSError (even as root)
    weights = folders["cut_weights"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return folders


@pytest.mark.parametrize(("case", "problem"), [
    ("empty", "is empty"),
    ("no_weights", "holds no weights"),
    ("bad_config", "config.json that is not valid JSON"),
    ("config_unreadable", "unreadable config.json"),
    ("cut_weights", "cannot be loaded|damaged weights"),
])
def test_a_broken_model_folder_is_a_configuration_error_naming_it(case, problem, tiny_models, tmp_path, photo):
    folder = broken_copies(tiny_models.path("blip-caption"), tmp_path)[case]
    with pytest.raises(ConfigurationError, match=problem) as caught:
        Captioner(model=str(folder)).execute(image=photo)
    message = str(caught.value)
    assert message.startswith(f"captioner: model folder {str(folder)!r} ")
    assert "save_pretrained" in message and "hf download" in message  # how to provide it


def test_a_device_this_machine_lacks_is_refused_by_name():
    with pytest.raises(ConfigurationError, match=r"--device 'tpu' is not a device: use cpu, cuda"):
        check_device("tpu", "--device")
    assert check_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match="no usable CUDA GPU"):
            check_device("cuda:0", "--device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a CPU-only machine")
def test_a_tool_forced_onto_missing_cuda_fails_before_loading(tiny_models, photo):
    with pytest.raises(ConfigurationError, match="captioner: device 'cuda'"):
        Captioner(model=str(tiny_models.path("blip-caption")), device="cuda").execute(image=photo)


@needs_offline_models
def test_the_names_polymodal_models_shows_are_accepted_as_models():
    use_test_cache()
    transcriber = Transcriber(model="packaged:whisper-base")
    assert Path(transcriber.model).is_dir() and transcriber.resolved_backend() == "faster-whisper"
    assert Path(Router(model="packaged:minilm").model).is_dir()


@pytest.mark.filterwarnings("ignore:Cannot enable progress bars")  # the hub's own: not what this checks
def test_loading_through_the_api_draws_no_progress_bar(tiny_models, tmp_path, capfd):
    from transformers.utils import logging as hf_logging

    folder = shutil.copytree(tiny_models.path("blip-caption"), tmp_path / "blip")  # not in the model cache yet
    hf_logging.enable_progress_bar()  # as for a user: the test bed turns bars off through the environment
    try:
        Captioner(model=str(folder)).bundle()
    finally:
        hf_logging.disable_progress_bar()
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err, err


def test_loading_a_diffusion_pipeline_draws_no_progress_bar(tiny_models, tmp_path, capfd):
    from diffusers.utils import logging as diffusers_logging

    folder = shutil.copytree(tiny_models.path("sd-tiny"), tmp_path / "sd")  # not in the model cache yet
    diffusers_logging.enable_progress_bar()
    ImageGenerator(model=str(folder)).bundle()
    err = capfd.readouterr().err
    assert "Loading pipeline components" not in err and "%|" not in err, err
    assert diffusers_logging.is_progress_bar_enabled()  # the user's own setting is back after the load
