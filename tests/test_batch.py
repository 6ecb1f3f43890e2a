"""``polymodal batch``: resumable JSONL runs that survive SIGKILL and record bad jobs.

The jobs use the tiny random Whisper (``--model transcriber=<folder>``): these tests are about
the batch runner, not about transcripts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from polymodal.batch import BadLine, Job, completed_ids, read_jobs

ROOT = Path(__file__).resolve().parents[1]


def test_R2_a_torn_last_line_is_cut_off_and_finished_ids_are_kept(tmp_path):
    output = tmp_path / "results.jsonl"
    output.write_text('{"id": "a", "ok": true}\n{"id": "b", "ok": false, "error": "x"}\n{"id": "c", "ok": tr')
    assert completed_ids(output) == {"a", "b"}
    assert output.read_text().endswith('"error": "x"}\n')  # the torn tail is gone; appending is safe again
    assert completed_ids(tmp_path / "absent.jsonl") == set()


def test_R1_bad_job_lines_become_failed_entries(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "ok", "prompt": "hi"}\nnot json\n{"id": "x", "prompt": 3, "shell": "rm"}\n\n'
                    '{"prompt": "no id"}\n')
    entries = list(read_jobs(jobs))
    assert isinstance(entries[0], Job)
    assert [type(e) for e in entries[1:]] == [BadLine, BadLine, BadLine]
    assert [e.id for e in entries] == ["ok", "line-2", "x", "line-5"]
    assert "shell" in entries[2].error and "prompt" in entries[2].error


def _jobs_file(folder: Path, media) -> tuple[Path, dict[str, str]]:
    good = media.wav(seconds=2.0, name="tone.wav")
    truncated = media.corrupt(good, keep_bytes=40, name="truncated.wav")
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    text_as_wav = folder / "text.wav"
    text_as_wav.write_text("this is not audio")
    lines, expect = [], {}
    for i in range(14):
        lines.append({"id": f"good-{i:02d}", "prompt": "transcribe this", "attachments": [good.name]})
        expect[f"good-{i:02d}"] = "ok"
    for job_id, path in [("truncated", truncated.name), ("empty", empty.name), ("text", text_as_wav.name),
                         ("missing", "nowhere.wav")]:
        lines.append({"id": job_id, "prompt": "transcribe", "attachments": [path]})
        expect[job_id] = "failed"
    lines.append({"id": "no-attachment", "prompt": "hello"})
    expect["no-attachment"] = "ok"
    jobs = folder / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(line) for line in lines) + "\n{broken json\n")
    expect["line-20"] = "failed"
    return jobs, expect


def _records(output: Path) -> list[dict]:
    return [json.loads(line) for line in output.read_text().splitlines()]  # every line must be valid JSON


def test_R1_R2_batch_survives_sigkill_and_resumes_without_losing_or_repeating_jobs(tmp_path, media, tiny_models):
    """With several jobs in flight at the kill, a re-run does each unfinished job once, no finished one again.

    At ``--concurrency 4`` (the default): ``-j 1`` runs the same pool with one thread, and this test
    costs ~25 s of the suite's budget per run.
    """
    concurrency = "4"
    jobs, expect = _jobs_file(media.folder, media)
    output = tmp_path / "out" / "results.jsonl"
    config = tmp_path / "polymodal.toml"  # a random model never stops on its own: keep its answers short
    config.write_text(f'[tools.transcriber]\nmodel = "{tiny_models.path("whisper-asr")}"\nmax_new_tokens = 4\n')
    command = [sys.executable, "-m", "polymodal.cli", "batch", str(jobs), "-o", str(output), "--profile", "default",
               "--config", str(config), "--concurrency", concurrency]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", POLYMODAL_ROUTER_MODEL="none")

    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        if output.exists() and output.read_text().count("\n") >= 3:
            break
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    done_before = output.read_text().count("\n")
    assert 3 <= done_before < len(expect), "the first run must be killed part-way"
    with open(output, "a") as fh:  # what a kill in the middle of a write leaves behind
        fh.write('{"id": "good-13", "ok": tr')

    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert second.returncode == 1, second.stderr  # some jobs failed, and the exit code says so
    assert f"skipping {done_before} job(s)" in second.stderr
    records = _records(output)
    ids = [r["id"] for r in records]
    assert sorted(ids) == sorted(expect) and len(ids) == len(set(ids))  # every id exactly once
    by_id = {r["id"]: r for r in records}
    for job_id, outcome in expect.items():
        assert by_id[job_id]["ok"] is (outcome == "ok"), by_id[job_id]
    assert "truncated.wav" in by_id["truncated"]["error"] and "nowhere.wav" in by_id["missing"]["error"]
    assert "not valid JSON" in by_id["line-20"]["error"]
    assert by_id["good-00"]["steps"][0]["tool"] == "transcriber"



def test_R1_a_bad_lines_made_up_id_never_swallows_a_real_job_with_that_id(tmp_path):
    from polymodal.batch import plan_batch

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('not json\n{"id": "line-1", "prompt": "hi"}\n{"id": "line-1~bad", "prompt": "hi"}\n')
    entries = list(read_jobs(jobs))
    pending, summary = plan_batch(entries, {})
    assert summary.duplicates == [] and len(pending) == 3  # the real line-1 runs; the bad line is recorded apart
    assert [e.id for e in entries] == ["line-1~bad~bad", "line-1", "line-1~bad"]
