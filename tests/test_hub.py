"""A model hub that cannot be reached costs one bounded probe per process, never retries (issue 14.1).

Each check runs in a subprocess with ``HF_HUB_OFFLINE`` unset and ``HF_ENDPOINT`` pointing at a
loopback port where nothing answers (closed, or a server that accepts and never replies): exactly
what a user's machine with no hub looks like to huggingface_hub, with no real network involved.
The test process itself keeps its sockets blocked (pytest-socket); the subprocess opens loopback ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import json, os, socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:%d" % server.getsockname()[1]
if os.environ["HUB_MODE"] == "closed":
    server.close()  # nothing listens on that port: connection refused
else:
    server.listen(8)  # the kernel accepts connections, nobody ever answers
"""


def run_script(body: str, mode: str, tmp_path: Path, timeout: float = 120) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(PYTHONPATH=str(ROOT), HUB_MODE=mode, HF_HOME=str(tmp_path / "hf"), POLYMODAL_CACHE=str(tmp_path))
    script = PRELUDE + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def cache_as_hub_model(folder: Path, hf_home: Path, repo: str) -> None:
    """Lay ``folder`` out in the hub cache the way a past `hf download repo` leaves it."""
    entry = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text("0" * 40)
    snapshot = entry / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).symlink_to(file)


LOADS = """
import transformers
from polymodal import hub
from polymodal.errors import ConfigurationError
from polymodal.tools import Captioner

calls = []
real = transformers.AutoConfig.from_pretrained.__func__
def counting(cls, name, *args, **kwargs):
    calls.append(name)
    return real(cls, name, *args, **kwargs)
transformers.AutoConfig.from_pretrained = classmethod(counting)

out = {"tries": []}
for model in ["org/missing", "org/missing", "org/other", "org/cached"]:
    started = time.perf_counter()
    try:
        Captioner(model=model).bundle()
        out["tries"].append([model, round(time.perf_counter() - started, 2), "loaded"])
    except ConfigurationError as exc:
        out["tries"].append([model, round(time.perf_counter() - started, 2), str(exc)])
out.update(probes=hub.probes, config_reads=calls, offline=hub.offline())
print(json.dumps(out))
"""


def test_an_unreachable_hub_is_probed_once_and_every_missing_model_fails_at_once(tmp_path, tiny_models):
    cache_as_hub_model(tiny_models.path("blip-caption"), tmp_path / "hf", "org/cached")
    out, stderr = run_script(LOADS, "closed", tmp_path)
    (missing, seconds, message), again, other, cached = out["tries"]
    assert out["probes"] == 1 and out["offline"]
    assert "'org/missing'" in message and "hf download org/missing" in message and "Connection refused" in message
    assert again[2] == message  # remembered: the same message
    assert "'org/other'" in other[2]  # no new probe, no retries
    assert cached[2] == "loaded"  # a model in the local hub cache still loads with the hub unreachable
    assert set(out["config_reads"]) == {"org/cached"}  # a missing model is refused before its loader even runs
    assert "Retrying" not in stderr and "thrown while requesting" not in stderr, stderr[-2000:]
    # README: "a missing model says how to provide it, at once" (huggingface_hub alone: 25-170 s of retries).
    assert seconds < 15 and again[1] < 1, out["tries"]


def test_a_hub_that_never_answers_is_given_up_on_after_the_probe_deadline(tmp_path):
    body = """
    from polymodal import hub
    from polymodal.model_status import _hub_check  # the doctor's row (its other rows would import torch)
    started = time.perf_counter()
    state = hub.status()
    seconds = time.perf_counter() - started
    _, ok, detail = _hub_check()
    print(json.dumps({"seconds": seconds, "reachable": state.reachable, "detail": state.detail,
                      "offline": hub.offline(), "limit": hub.PROBE_SECONDS, "doctor": [ok, detail]}))
    """
    out, _ = run_script(body, "silent", tmp_path)
    assert not out["reachable"] and out["offline"] and "did not answer" in out["detail"]
    assert out["seconds"] < out["limit"] + 2  # bounded: the probe thread is abandoned at its deadline
    ok, detail = out["doctor"]  # `polymodal doctor` reports what the probe found, not what HF_HUB_OFFLINE says
    assert not ok and detail.startswith("unreachable") and "--profile offline" in detail
