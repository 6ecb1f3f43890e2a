"""``polymodal eval``: score planners on TaskBench-style cases."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from polymodal.commands._common import (
    EXIT_USAGE,
    ConfigOpt,
    DebugOpt,
    DeviceOpt,
    LlmOpt,
    ModelOpt,
    _load_llm,
    _overrides,
    app,
    err,
    errors_as_lines,
    out,
    safe,
)
from polymodal.errors import ConfigurationError


@app.command("eval")
def eval_(
    cases: Annotated[list[Path], typer.Argument(help="JSONL cases: TaskBench tasks or polymodal's own format")],
    planner: Annotated[str, typer.Option("--planner", help="router, tiered, defaults or llm (needs --llm)")] = "tiered",
    as_json: Annotated[bool, typer.Option("--json", help="print the summary and every case as JSON")] = False,
    show: Annotated[str, typer.Option("--show", help="cases to list under the table: misses, all or none")] = "misses",
    split: Annotated[str, typer.Option(
        "--split", help="score the tuning part, the held-out part or all (each part is reported apart)")] = "all",
    fit: Annotated[Path | None, typer.Option(
        "--fit", help="learn the router's head from the tuning part of the files, write it to PATH (.npz), "
                      "then score with it")] = None,
    head: Annotated[str | None, typer.Option(
        "--head", help="the router's head: a .npz written by --fit, or 'none' for the cosine rules alone "
                       "(default: the packaged head)")] = None,
    few_shot: Annotated[int, typer.Option(
        "--few-shot", help="with --llm: show the planner this many solved tuning-part requests (0: none)")] = 3,
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="TaskBench tool=polymodal tools, e.g. 'Image-to-Text=captioner' (repeatable)")] = None,
    profile: Annotated[str | None, typer.Option(
        "--profile", "-p", help="plan over this profile's tools (default: every built-in tool)")] = None,
    config: ConfigOpt = None,
    llm: LlmOpt = None,
    device: DeviceOpt = None,
    model: ModelOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Score a planner on a JSONL file: node and edge F1 (TaskBench's), exact plans, LLM calls, planning time."""
    from polymodal.agent.fewshot import FewShotExamples
    from polymodal.agent.router import Router
    from polymodal.evaluation import TASKBENCH_TOOLS, evaluate, load_cases, make_planner
    from polymodal.evaluation.fewshot import tuning_examples
    from polymodal.evaluation.fit import fit_head, with_head
    from polymodal.evaluation.splits import in_split

    with errors_as_lines(debug, EXIT_USAGE):  # the options: a wrong one is a usage error, nothing has run
        if show not in ("misses", "all", "none"):
            msg = f"--show expects misses, all or none, got {show!r}"
            raise ConfigurationError(msg)
        in_split([], split)  # type: ignore[arg-type]  # a wrong --split is a usage error
        tool_map = {**TASKBENCH_TOOLS, **_mapping(mapping)}
        tools, router = _eval_tools(profile, config, model, device)
        chat = _load_llm(llm, device)
        make_planner(planner, llm=chat, router=router)  # type: ignore[arg-type]  # a wrong --planner: usage error
    with errors_as_lines(debug):  # a cases file that cannot be read is a bad file, as for `run`: exit 1
        loaded = [case for path in cases for case in load_cases(path, tool_map)]
        fitted = None
        if fit is not None:  # learned from the tuning part only: fit_head drops held-out cases unread
            with err.status("fitting the router's head on the tuning part…"):
                fitted = fit_head(loaded, tools, router or Router())
            fitted.head.save(fit)
            router = with_head(router or Router(), fit)
        elif head is not None:
            router = with_head(router or Router(), None if head == "none" else Path(head))
        # An LLM planner is shown the nearest solved requests of the tuning part only (never held-out).
        examples = FewShotExamples(tuning_examples(loaded), k=few_shot) if chat is not None and few_shot else None
        chosen = make_planner(planner, llm=chat, router=router, examples=examples)  # type: ignore[arg-type]
        chosen_cases = [c for c, keep in zip(loaded, in_split((c.split for c in loaded), split), strict=True) if keep]  # type: ignore[arg-type]
        total = sum(not case.skipped for case in chosen_cases)
        with err.status(f"planning {total} cases…") as status:
            done: list[int] = []

            def advance(_result: Any) -> None:
                done.append(1)
                status.update(f"planning case {len(done)}/{total}…")

            report = evaluate(chosen_cases, chosen, tools, name=planner, on_case=advance)
        if as_json:
            data = report.to_dict()
            if fitted is not None:
                data["fit"] = _fit_summary(fitted, fit)
            sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=True) + "\n")
            return
        if fitted is not None:
            _print_fit(_fit_summary(fitted, fit))
        _print_report(report, show)


def _mapping(items: list[str] | None) -> dict[str, frozenset[str]]:
    found: dict[str, frozenset[str]] = {}
    for item in items or []:
        task, sep, names = item.partition("=")
        if not sep or not task.strip():
            msg = f"--map expects 'TaskBench tool=tool1,tool2', got {item!r}"
            raise ConfigurationError(msg)
        found[task.strip()] = frozenset(n.strip() for n in names.split(",") if n.strip())
    return found


def _eval_tools(profile: str | None, config: Path | None, models: list[str] | None,
                device: str | None) -> tuple[dict[str, Any], Any]:
    """Every built-in tool (nothing loads), or a profile's tools and its router (which knows what is left out)."""
    if not (profile or config or models):
        from polymodal.tools import default_tools

        return {tool.name: tool for tool in default_tools()}, None
    from polymodal.profiles import build_router, build_tools, select

    selection = select(profile, _overrides(models), config=config)
    tools = {tool.name: tool for tool in build_tools(selection=selection, device=device)}
    return tools, build_router(selection, device=device)


def _print_report(report: Any, show: str) -> None:
    summary = report.summary()
    nodes, edges, ms, cpu = (summary["node_counts"], summary["edge_counts"], summary["planning_ms"],
                             summary["planning_cpu_ms"])
    table = Table("metric", "value", title=f"planner: {safe(report.planner)}")
    rows = [
        ("cases", f"{summary['cases']} scored" + (f", {summary['skipped']} skipped" if summary["skipped"] else "")),
        ("node F1", f"{summary['node_f1']:.1f}  (tp {nodes['tp']}, fp {nodes['fp']}, fn {nodes['fn']})"),
        ("edge F1", f"{summary['edge_f1']:.1f}  (tp {edges['tp']}, fp {edges['fp']}, fn {edges['fn']})"),
        ("exact plans", f"{summary['exact_plans']:.1f} %"),
        ("LLM calls / request", f"{summary['llm_calls_per_request']:.2f}"),
        ("planning ms / request", f"mean {ms['mean']:.1f}, median {ms['median']:.1f}, p95 {ms['p95']:.1f} "
                                  "(after the first)"),
        ("planning CPU ms / request", f"mean {cpu['mean']:.1f}, median {cpu['median']:.1f}, p95 {cpu['p95']:.1f}"),
        ("first request", f"{summary['first_seconds']:.2f} s (loads the router or LLM)"),
        ("tiers", ", ".join(f"{k} {v}" for k, v in summary["tiers"].items())),
        *((f"{part} part", f"{figures['cases']} cases: node F1 {figures['node_f1']:.1f}, "
                           f"edge F1 {figures['edge_f1']:.1f}, exact {figures['exact_plans']:.1f} %, "
                           f"routed wrong {figures['confidently_wrong']}"
                           + (f", ECE {figures['ece']:.1f} over {figures['rated']} routed" if figures["rated"] else ""))
          for part, figures in summary["splits"].items()),
    ]
    if summary["errors"]:
        rows.append(("planning errors", str(summary["errors"])))
    for name, value in rows:
        table.add_row(name, Text(safe(value)))
    out.print(table)
    listed = [c for c in report.cases if show == "all" or (show == "misses" and not c.exact)]
    if listed:
        cases = Table("id", "request", "expected", "planned", "exact", title="misses" if show == "misses" else "cases")
        for case in listed:
            planned = ", ".join(case.planned) or (f"(failed: {case.error})" if case.error else "(nothing)")
            if case.missing_tools:
                planned += f"; missing: {', '.join(case.missing_tools)}"
            cases.add_row(*(Text(safe(cell)) for cell in (
                case.id, case.request[:70] + ("…" if len(case.request) > 70 else ""),
                ", ".join(case.expected) or "(nothing)", planned, "yes" if case.exact else "no")))
        out.print(cases)


def _fit_summary(fitted: Any, path: Path | None) -> dict[str, Any]:
    """What --fit learned and how it did out of fold (inside the tuning part), as JSON-ready data."""
    from dataclasses import asdict

    return {"path": str(path), "samples": fitted.samples, "tuning_cases": fitted.cases, "skipped": fitted.skipped,
            "l2": fitted.l2, "temperature": round(fitted.head.temperature, 3),
            "min_confidence": fitted.head.min_confidence,
            "accuracy_cosine": round(100 * fitted.accuracy_cosine, 1),
            "accuracy_head": round(100 * fitted.accuracy_head, 1),
            "ece_before": round(100 * fitted.ece_before, 1), "ece_after": round(100 * fitted.ece_after, 1),
            "reliability": [asdict(b) for b in fitted.bins]}


def _print_fit(fit: dict[str, Any]) -> None:
    table = Table("metric", "value", title=f"router head fitted on the tuning part: {safe(fit['path'])}")
    bins = "; ".join(f"{b['low']:.1f}-{b['high']:.1f}: {b['count']} at {b['confidence']:.2f}, "
                     f"right {b['accuracy']:.2f}" for b in fit["reliability"] if b["count"])
    for name, value in (
        ("clauses learned from", f"{fit['samples']} from {fit['tuning_cases']} tuning cases"
                                 + (f" ({len(fit['skipped'])} cases left out)" if fit["skipped"] else "")),
        ("out-of-fold accuracy", f"head {fit['accuracy_head']:.1f} %, cosine alone {fit['accuracy_cosine']:.1f} %"),
        ("out-of-fold ECE", f"{fit['ece_before']:.1f} before the temperature, {fit['ece_after']:.1f} after "
                            f"(T = {fit['temperature']:.2f})"),
        ("reliability (out of fold)", bins),
        ("L2, min_confidence", f"{fit['l2']}, {fit['min_confidence']:.2f}"),
    ):
        table.add_row(name, Text(safe(value)))
    out.print(table)
