"""A new user's first hour, timed: each command's wall time, peak RSS, exit code and first line.

Every command runs as a fresh subprocess the way a user types it, in a throw-away ``$HOME`` (so the
first voice-note run assembles Whisper base into the cache, as it would on a new machine) and with
``HF_HUB_OFFLINE`` unset: a model the machine lacks has to be found missing the hard way, as it is
for a user whose machine cannot reach the hub.

Give two source trees to compare them side by side (commands interleaved, same machine state)::

    git archive BASE | tar -x -C /tmp/before
    python bench/first_run.py --tree /tmp/before --tree .

Peak RSS comes from ``wait4`` (the command's own process). The answer commands' stdout is compared
between trees: the same answer is expected on both sides.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PY = sys.executable
CLI = [PY, "-m", "polymodal.cli"]
VOICE = "examples/media/voice-note.wav"
SIGN = "examples/media/sign.png"

COMMANDS: list[tuple[str, list[str], bool]] = [
    # (label, argv, whose stdout must be equal between trees)
    ("import polymodal", [PY, "-c", "import polymodal"], True),
    ("polymodal --help", [*CLI, "--help"], False),
    ("polymodal models", [*CLI, "models"], False),
    ("polymodal doctor", [*CLI, "doctor"], False),
    ("run voice note (first: assembles Whisper)", [*CLI, "run", "What does this voice note say?", "-a", VOICE], True),
    ("run voice note (again)", [*CLI, "run", "What does this voice note say?", "-a", VOICE], True),
    ("run sign (OCR)", [*CLI, "run", "What does the sign say?", "-a", SIGN], True),
    ("run photo, --profile default (hub model)", [*CLI, "run", "Describe this photo", "-a", SIGN,
                                                  "--profile", "default"], False),
    ("run voice note --device cuda (no CUDA)", [*CLI, "run", "transcribe", "-a", VOICE, "--device", "cuda"], False),
    ("run --model captioner=./missing", [*CLI, "run", "describe", "-a", SIGN, "--model",
                                         "captioner=./missing-folder"], False),
    ("run voice note, router off", [*CLI, "run", "What does this voice note say?", "-a", VOICE], True),
    ("python examples/quickstart.py SIGN VOICE", [PY, "examples/quickstart.py", SIGN, VOICE], False),
]


@dataclass
class Result:
    seconds: float
    peak_mb: float
    code: int
    stdout: str
    stderr: str


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0][:110] + f" (+{len(lines) - 1} lines)" if len(lines) > 1 else lines[0][:110]) if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, help="a source tree (repeat to compare)")
    parser.add_argument("--timeout", type=float, default=400)
    parser.add_argument("--only", help="run only commands whose label contains this")
    args = parser.parse_args()
    trees = [t.resolve() for t in args.tree or [Path(__file__).resolve().parents[1]]]
    homes = [Path(tempfile.mkdtemp(prefix="polymodal-first-run-home-")) for _ in trees]
    rows = []
    for label, argv, same in COMMANDS:
        if args.only and args.only not in label:
            continue
        results = []
        for tree, home in zip(trees, homes, strict=True):
            extra = {"POLYMODAL_ROUTER_MODEL": "none"} if "router off" in label else {}
            results.append(run_polled(argv, tree, home, args.timeout, extra))
        rows.append((label, results, same))
        print(f"\n## {label}: {shlex.join(a.replace(PY, 'python') for a in argv)}", flush=True)
        for tree, r in zip(trees, results, strict=True):
            print(f"  {tree.name or tree}: {r.seconds:6.1f} s  {r.peak_mb:6.0f} MB  exit {r.code}  "
                  f"stdout: {first_line(r.stdout)!r}  stderr: {first_line(r.stderr)!r}", flush=True)
        if same and len(results) > 1:
            equal = len({r.stdout.strip() for r in results}) == 1
            print(f"  stdout equal across trees: {equal}", flush=True)
    print("\n| command | " + " | ".join(f"{t.name or t}: s / MB / exit" for t in trees) + " |")
    print("|---|" + "---|" * len(trees))
    for label, results, _ in rows:
        cells = " | ".join(f"{r.seconds:.1f} / {r.peak_mb:.0f} / {r.code}" for r in results)
        print(f"| {label} | {cells} |")


def run_polled(argv: list[str], tree: Path, home: Path, timeout: float, extra_env: dict[str, str]) -> Result:
    """Start the command and reap it with ``wait4`` (which reports its peak RSS), killing it at ``timeout``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "POLYMODAL_", "TRANSFORMERS_"))}
    env.update(PYTHONPATH=str(tree), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), **extra_env)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=tree, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout:
                proc.kill()
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Result(seconds, usage.ru_maxrss / 1024, proc.returncode,
                      out.read().decode(errors="replace"), err.read().decode(errors="replace"))


if __name__ == "__main__":
    main()
