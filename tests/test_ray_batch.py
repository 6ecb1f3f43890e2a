"""``polymodal batch --ray``: jobs in Ray actors on one real local Ray instance (started once per session).

Each actor builds its own agent (the tiny Whisper) from a module-level factory, as it would on a
cluster. The promises are the local runner's: every id exactly once, bad inputs recorded, a job
whose actor dies is rerun, and a killed driver resumes.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from support.batch_agents import tiny_transcriber_agent

from polymodal.batch import run_batch
from polymodal.ray_batch import RayOptions

pytestmark = pytest.mark.enable_socket  # Ray talks to its own processes on 127.0.0.1

ROOT = Path(__file__).resolve().parents[1]


def _jobs(folder: Path, media, n: int = 40) -> tuple[Path, set[str], set[str]]:
    """``n`` jobs, one in ten pointing at a corrupt file."""
    good = media.wav(seconds=1.0, name="tone.wav")
    (folder / "broken.wav").write_text("not audio at all")
    lines, ok, bad = [], set(), set()
    for i in range(n):
        job_id = f"job-{i:02d}"
        corrupt = i % 10 == 3
        lines.append({"id": job_id, "prompt": "transcribe", "attachments": ["broken.wav" if corrupt else good.name]})
        (bad if corrupt else ok).add(job_id)
    jobs = folder / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return jobs, ok, bad


def _records(output: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.read_text().splitlines()]


def test_forty_jobs_with_corrupt_inputs_and_an_actor_killed_mid_run(ray_local, tiny_models, media, tmp_path):
    jobs, ok, bad = _jobs(media.folder, media)
    output = tmp_path / "results.jsonl"
    factory = functools.partial(tiny_transcriber_agent, str(tiny_models.path("whisper-asr")))
    killed: list[str] = []

    def kill_one_worker(record: dict[str, Any]) -> None:
        if not killed and record.get("worker"):  # the first result names its actor's process: kill it
            killed.append(record["worker"])
            os.kill(int(record["worker"].rsplit(":", 1)[1]), signal.SIGKILL)

    summary = run_batch(None, jobs, output, concurrency=4, pool=RayOptions(factory, actors=2),  # agents live in actors
                        on_done=kill_one_worker)
    records = _records(output)
    ids = [r["id"] for r in records]
    assert sorted(ids) == sorted(ok | bad) and len(ids) == len(set(ids)), "every id exactly once"
    assert {r["id"] for r in records if r["ok"]} == ok, "the jobs of the killed actor were run again"
    assert all("broken.wav" in r["error"] for r in records if r["id"] in bad)
    assert killed and summary.ok == len(ok)
    assert len({r["worker"] for r in records if "worker" in r}) >= 2


def test_a_killed_driver_resumes_on_the_cluster(ray_local, tiny_models, media, tmp_path):
    jobs, ok, bad = _jobs(media.folder, media, n=20)
    output = tmp_path / "results.jsonl"
    config = tmp_path / "polymodal.toml"
    config.write_text(f'[tools.transcriber]\nmodel = "{tiny_models.path("whisper-asr")}"\nmax_new_tokens = 4\n')
    address = ray_local.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "polymodal.cli", "batch", str(jobs), "-o", str(output), "--profile", "default",
               "--config", str(config), "--ray", address, "--ray-actors", "1", "-j", "2"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", POLYMODAL_ROUTER_MODEL="none")

    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        if output.exists() and output.read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    done_before = output.read_text().count("\n")
    assert 3 <= done_before < 20, "the driver must be killed part-way"

    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 1, second.stderr  # the corrupt jobs failed, and the exit code says so
    records = _records(output)
    ids = [r["id"] for r in records]
    assert sorted(ids) == sorted(ok | bad) and len(ids) == len(set(ids))
    assert {r["id"] for r in records if r["ok"]} == ok


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs workers without CUDA, so that --device cuda fails there")
def test_an_agent_the_workers_cannot_build_stops_the_batch_before_any_job(ray_local, media, tmp_path):
    jobs, _, _ = _jobs(media.folder, media, n=4)
    output = tmp_path / "results.jsonl"
    address = ray_local.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "polymodal.cli", "batch", str(jobs), "-o", str(output), "--device", "cuda",
               "--ray", address, "--ray-actors", "1"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", POLYMODAL_ROUTER_MODEL="none")
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    # the driver does not check --device (the cluster's machines may have the GPU it lacks): the worker does
    assert result.returncode == 2, result.stderr
    assert "the Ray workers could not build the agent, so no job ran" in result.stderr
    assert "cuda" in result.stderr and "(on " in result.stderr
    assert not output.exists() or output.read_text() == ""
