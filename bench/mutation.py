"""Mutation testing of the core modules: which one-token changes of the code do the tests miss?

mutmut 3 rewrites each function of the target modules many ways (``<`` to ``<=``, ``and`` to ``or``,
a string or number changed, a call argument dropped...) and runs the tests that cover that function
against each mutant. A mutant the tests do not catch ("survived") is a change of behaviour nobody
would notice: a missing test, or code that does nothing.

Targets: plan validation (``agent/plan.py``), the executor (``agent/executor.py``), fusion and its
citation cleaning (``agent/fusion.py``), media sniffing (``_sniff`` and ``_looks_like``, the
whole of ``media/_sniffing.py``) and redaction (``redaction.py``). mutmut 3
mutates function bodies only: module-level tables (magic numbers, the redaction patterns) are not
mutated, and are guarded by table-driven tests instead.

Not part of CI (it takes tens of minutes on two cores). It works on a copy of the repository in a
temporary folder (mutmut writes a ``mutants/`` tree next to the code), prints every survivor with
its diff, and removes the copy unless ``--keep``.

Run: ``python bench/mutation.py [--max-children 2] [--keep] [--only plan.py]``.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module -> the functions to mutate (None: every function of the module)
TARGETS: dict[str, set[str] | None] = {
    "polymodal/agent/plan.py": None,
    "polymodal/agent/executor.py": None,
    "polymodal/agent/fusion.py": None,
    "polymodal/media/_sniffing.py": None,
    "polymodal/redaction.py": None,
}
# The tests that guard those behaviours; all run without model checkpoints.
TESTS = [
    "tests/test_plan.py", "tests/test_plan_gate.py", "tests/test_executor.py", "tests/test_executor_records.py",
    "tests/test_deadlines.py",
    "tests/test_settings_agent.py", "tests/test_citations.py", "tests/test_fusion_answers.py",
    "tests/test_error_redaction.py", "tests/test_reliability_tools.py", "tests/test_reliability_runs.py",
    "tests/test_sniffing.py",
]
PYTEST_ARGS = ["-p", "no:randomly", "-q", "-k", "not router"]  # the router case needs an embedding model


def focus(source: str, keep: set[str]) -> str:
    """``source`` with every top-level function or class not in ``keep`` fenced off from mutmut."""
    lines = source.splitlines()
    fences: list[tuple[int, int]] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name not in keep:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            fences.append((first, node.end_lineno or node.lineno))
    for first, last in reversed(fences):
        lines.insert(last, "# pragma: no mutate end")
        lines.insert(first - 1, "# pragma: no mutate start")
    lines.append("_MUTMUT_FOCUS_END = None  # a statement after the last fence, where mutmut reads it")
    return "\n".join(lines) + "\n"


def prepare(work: Path, targets: dict[str, set[str] | None]) -> None:
    """Copy what the tests need into ``work`` and configure mutmut there."""
    for name in ("polymodal", "tests"):
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    for module, keep in targets.items():
        if keep is not None:
            path = work / module
            path.write_text(focus(path.read_text(encoding="utf-8"), keep), encoding="utf-8")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pyproject = re.sub(r"\n\[tool\.mutmut\].*?(?=\n\[|\Z)", "", pyproject, flags=re.S)

    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(f'"{item}"' for item in items) + "]"

    tests = [t for t in TESTS if (work / t).exists()]
    pyproject += (f"\n[tool.mutmut]\nsource_paths = [\"polymodal\"]\nonly_mutate = {toml_list(list(targets))}\n"
                  f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
                  f"pytest_add_cli_args = {toml_list(PYTEST_ARGS)}\n")
    (work / "pyproject.toml").write_text(pyproject, encoding="utf-8")


def mutmut(work: Path, *args: str, log: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the mutated copy must be what imports
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "mutmut", *args]
    if log is None:
        return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False).stdout
    with open(log, "w", encoding="utf-8") as out:
        subprocess.run(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    return log.read_text(encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--only", default="", help="mutate only the target modules whose path contains this")
    parser.add_argument("--keep", action="store_true", help="keep the working copy (to run `mutmut browse` in it)")
    args = parser.parse_args()

    targets = {module: keep for module, keep in TARGETS.items() if args.only in module}
    work = Path(tempfile.mkdtemp(prefix="polymodal-mutation-"))
    started = time.perf_counter()
    try:
        prepare(work, targets)
        print(f"mutating {', '.join(targets)} in {work}; tests: {len(TESTS)} files", flush=True)
        mutmut(work, "run", "--max-children", str(args.max_children), log=work / "run.log")
        results = mutmut(work, "results", "--all", "true")
        statuses: dict[str, list[str]] = {}
        for line in results.splitlines():
            name, _, status = line.strip().rpartition(": ")
            if name:
                statuses.setdefault(status, []).append(name)
        minutes = (time.perf_counter() - started) / 60
        print(f"{sum(map(len, statuses.values()))} mutants in {minutes:.0f} min: "
              + ", ".join(f"{len(names)} {status}" for status, names in sorted(statuses.items())))
        for status in ("survived", "no tests", "timeout", "suspicious"):
            for name in statuses.get(status, []):
                print(f"\n--- {status}: {name}")
                print(mutmut(work, "show", name).strip())
        if not statuses:
            print((work / "run.log").read_text(encoding="utf-8")[-3000:])
            raise SystemExit("bench: mutmut produced no results (the end of its log is above)")
    finally:
        if args.keep:
            print(f"\nkept {work}: `cd {work} && python -m mutmut browse`")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
