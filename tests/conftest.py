"""Test bed wiring: offline Hugging Face, one CPU thread, tiny checkpoints and generated media.

The environment variables must be set before anything imports transformers/huggingface_hub:
with HF_HUB_OFFLINE=1 a hub id fails in milliseconds instead of after 20-140 s of retries, and
one thread is 10-100x faster than two for tiny models on a busy 2-core machine.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
os.environ["DIFFUSERS_VERBOSITY"] = "error"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

# onnxruntime (the OCR tool) writes a device id and a telemetry queue under $XDG_CACHE_HOME, read once
# when it is imported: point it at a temporary folder before anything imports it, so that tests
# never write into the user's home.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="polymodal-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)
# polymodal's own cache (assembled models, the router's anchor embeddings) goes to the shared test cache too.
os.environ.setdefault("POLYMODAL_CACHE", os.path.join(tempfile.gettempdir(), "polymodal-test-cache"))

import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# `import support.tiny_models` works whatever pytest's rootdir/import mode is.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from support.media_files import MediaFactory  # noqa: E402
from support.skips import (  # noqa: E402, F401 - hooks: gpu tests skip without CUDA; other skips fail in CI
    pytest_collection_modifyitems,
    pytest_make_collect_report,
    pytest_runtest_makereport,
)
from support.tiny_models import TinyModels  # noqa: E402

pytest_plugins = ["pytester"]  # tests/test_skips.py runs the skip policy on small generated suites

_torch_threads_set = False


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Pin torch to one thread once something has imported it (never import torch just for this)."""
    global _torch_threads_set
    if not _torch_threads_set and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
        _torch_threads_set = True


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Tiny random checkpoints, each built on first ``tiny_models.path(name)`` and kept for the session."""
    import torch

    torch.set_num_threads(1)
    return TinyModels(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture
def media(tmp_path: Path) -> MediaFactory:
    """Generated media files in this test's tmp_path: ``media.png()``, ``media.wav(seconds=2)``, ..."""
    return MediaFactory(tmp_path)


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray instance for the whole session (2 CPUs, no dashboard); shut down at the end."""
    ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed")
    if not ray.is_initialized():
        # Workers import the test bed's helpers (support.*) by name, as the test process does; the
        # node listens on loopback only.
        path = os.pathsep.join([_TESTS_DIR, *filter(None, [os.environ.get("PYTHONPATH")])])
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 _node_ip_address="127.0.0.1", runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh real redis-server on loopback for each test module that asks for one (support/redis_server.py)."""
    from support.redis_server import MISSING, REDIS_SERVER, redis_server

    if not REDIS_SERVER:
        pytest.skip(MISSING)
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
