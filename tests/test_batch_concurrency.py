"""Concurrent batch runs in-process: every job once, results as they finish, Ctrl-C loses nothing.

The SIGKILL-and-resume promise with jobs in flight is tested end to end in tests/test_batch.py;
these tests drive :func:`polymodal.batch.run_batch` and its pool directly, with the tiny Whisper.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.progress import Task

from polymodal import Agent
from polymodal.batch import BatchSummary, Job, JobPool, run_batch
from polymodal.commands import _RateColumn
from polymodal.tools import Transcriber


def _write_jobs(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _records(output: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.read_text().splitlines()]


@pytest.fixture
def agent(tiny_models) -> Agent:
    return Agent(llm=None, tools=[Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=4)])


def test_concurrent_run_answers_every_job_once_and_leaves_the_agent_alone(tmp_path, media, agent):
    tone = media.wav(seconds=1.0)
    lines = [{"id": f"j{i}", "prompt": "transcribe", "attachments": [tone.name]} for i in range(10)]
    jobs = _write_jobs(media.folder / "jobs.jsonl", [*lines, {"id": "bad", "prompt": "x", "attachments": ["no.wav"]}])
    output = tmp_path / "results.jsonl"
    summary = run_batch(agent, jobs, output, concurrency=4)
    records = _records(output)
    assert sorted(r["id"] for r in records) == sorted([*(f"j{i}" for i in range(10)), "bad"])
    assert summary.ok == 10 and summary.failed_ids == ["bad"]
    assert all(r["steps"][0]["status"] == "ok" for r in records if r["id"] != "bad")
    assert agent.conversation.turns == [], "jobs run on fresh conversations: the caller's agent keeps its own"


def test_retry_failed_runs_only_the_failed_jobs_and_keeps_each_id_once(tmp_path, media, agent):
    tone = media.wav(seconds=1.0)
    jobs = _write_jobs(media.folder / "jobs.jsonl", [
        {"id": "fine", "prompt": "transcribe", "attachments": [tone.name]},
        {"id": "late-file", "prompt": "transcribe", "attachments": ["later.wav"]},
    ])
    output = tmp_path / "results.jsonl"
    first = run_batch(agent, jobs, output, concurrency=2)
    assert first.failed_ids == ["late-file"]
    media.wav(seconds=1.0, name="later.wav")  # the user fixes the input
    again = run_batch(agent, jobs, output, concurrency=2)
    assert (again.skipped, again.pending) == (2, 0), "without --retry-failed a recorded failure is final"
    retried = run_batch(agent, jobs, output, concurrency=2, retry_failed=True)
    assert (retried.retried, retried.ok, retried.skipped) == (1, 1, 1)
    records = _records(output)
    assert sorted(r["id"] for r in records) == ["fine", "late-file"] and all(r["ok"] for r in records)


def test_repeated_ids_are_reported_as_repeats_not_as_already_done(tmp_path, media, agent):
    jobs = _write_jobs(media.folder / "jobs.jsonl", [{"id": "a", "prompt": "hi"}, {"id": "a", "prompt": "again"},
                                                     {"id": "b", "prompt": "hi"}])
    seen: list[BatchSummary] = []
    summary = run_batch(agent, jobs, tmp_path / "results.jsonl", on_start=seen.append)
    assert seen[0].duplicates == ["a"] and seen[0].skipped == 0 and seen[0].pending == 2
    assert summary.ok == 2


def test_a_stopped_pool_starts_nothing_new_but_yields_the_jobs_in_flight():
    started: list[str] = []
    release = threading.Event()

    def run(entry: Any) -> dict[str, Any]:
        started.append(entry.id)
        release.wait(5)
        return {"id": entry.id, "ok": True}

    pool = JobPool([Job(id=f"j{i}", prompt="p") for i in range(6)], run, concurrency=2)
    while len(started) < 2:
        time.sleep(0.001)
    pool.stop()  # what Ctrl-C does
    release.set()
    drained = sorted(record["id"] for record in pool.drain())
    assert drained == sorted(started) and len(drained) == 2


def test_a_job_that_raises_outside_the_agent_is_recorded_not_lost():
    def run(entry: Any) -> dict[str, Any]:
        raise OSError("disk full while saving the artifact")

    records = list(JobPool([Job(id="x", prompt="p")], run, concurrency=1))
    assert records[0]["ok"] is False and "disk full" in records[0]["error"]


def test_the_rate_counts_the_whole_run_not_the_burst_after_loading():
    clock = [0.0]
    task = Task(0, "batch", total=10, completed=0, _get_time=lambda: clock[0])
    task.start_time = 0.0
    column = _RateColumn()
    assert "–" in column.render(task).plain
    clock[0] = 8.0  # the first job carried an 8 s model load, then three finished at once
    task.completed = 4
    assert column.render(task).plain == "2.0 s/job"
