"""``polymodal batch``: a JSONL file of jobs, answered concurrently and resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from polymodal.commands._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    ConfigOpt,
    DebugOpt,
    DeviceOpt,
    LlmOpt,
    ModelOpt,
    ProfileOpt,
    _agent,
    _check_options,
    app,
    cli_agent,
    err,
    errors_as_lines,
    safe,
    say,
)
from polymodal.errors import ConfigurationError


class _RateColumn(ProgressColumn):
    """Jobs finished per second of this run so far (or seconds per job when slower than one a second).

    Counted over the whole run, model loading included: rich's own speed estimate looks only at
    the gaps between recent updates, which reads hundreds of jobs/s when the first job carried the
    load and the rest came in a burst.
    """

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        if not task.completed or not elapsed:
            return Text("– jobs/s", style="dim")
        speed = task.completed / elapsed
        return Text(f"{speed:.2f} jobs/s" if speed >= 1 else f"{1 / speed:.1f} s/job", style="cyan")


@app.command()
def batch(
    jobs: Annotated[Path, typer.Argument(metavar="JOBS",
                                         help='JSONL file, one {"id", "prompt", "attachments"} per line')],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE",
        help="results JSONL (appended; resumable); default: JOBS.results.jsonl beside it")] = None,
    files_dir: Annotated[Path | None, typer.Option("--files-dir", metavar="DIR",
                                                   help="where generated media go")] = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", "-j", min=1, metavar="N",
        help="jobs run at once; their model calls share batches (1: in file order)")] = 4,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", metavar="", help="run again the jobs whose recorded result failed")] = False,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="[ADDRESS]",
        help="spread the jobs over a Ray cluster: --ray alone uses RAY_ADDRESS or starts a local one; "
             "or give its address (auto, ray://head:10001)")] = None,
    ray_actors: Annotated[int | None, typer.Option(
        "--ray-actors", min=1, metavar="N",
        help="with --ray: actors sharing the jobs (default: one per 2 cluster CPUs)")] = None,
    profile: ProfileOpt = None,
    config: ConfigOpt = None,
    llm: LlmOpt = None,
    device: DeviceOpt = None,
    model: ModelOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run every request of a JSONL file; re-running skips the ids already in the output.

    Exit code: 0 when every job in the output succeeded, 1 when any failed (in this run or an earlier
    one), 2 usage.
    """
    from polymodal.batch import BatchSummary, run_batch
    from polymodal.results import failed_ids

    output = output or jobs.with_name(jobs.stem + ".results.jsonl")
    files_dir = files_dir or output.with_name(output.stem + "-files")
    with errors_as_lines(debug, EXIT_USAGE):
        if not jobs.is_file():
            msg = f"jobs file {str(jobs)!r} does not exist"
            raise ConfigurationError(msg)
        # With --ray the agent (its models, the --llm, the --device) is built in each actor, on the
        # cluster's machines: the driver only checks what it can, and loads nothing.
        agent = None
        if ray is None:
            agent = _agent(profile, config, llm, device, model, debug)
        else:
            _check_options(profile, config, model)
    with errors_as_lines(debug):
        progress = Progress(
            TextColumn("batch"), BarColumn(), MofNCompleteColumn(), _RateColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), console=err, transient=False,
        )
        task_ids: list[Any] = []

        def started(plan: BatchSummary) -> None:
            if plan.skipped:
                say(err, f"skipping {plan.skipped} job(s) already in {output}", "dim")
            if plan.retried:
                say(err, f"running {plan.retried} failed job(s) again", "dim")
            if plan.duplicates:
                shown = ", ".join(plan.duplicates[:5]) + (" ..." if len(plan.duplicates) > 5 else "")
                say(err, f"ignoring {len(plan.duplicates)} repeated id(s) in {jobs} (the first of each runs): "
                         f"{shown}", "yellow")
            task_ids.append(progress.add_task("batch", total=plan.pending))

        def done(record: dict[str, Any]) -> None:
            if not record["ok"]:
                progress.console.print(Text(safe(f"failed {record['id']}: {record.get('error', '')}"), style="red"))
            progress.advance(task_ids[0])

        def interrupted(in_flight: int) -> None:
            progress.console.print(Text(f"stopping: finishing {in_flight} job(s) in flight "
                                        "(Ctrl-C again to stop now; a re-run does them)", style="yellow"))

        ray_options = None
        setup_failures: tuple[type[Exception], ...] = ()
        if ray is not None:
            import functools

            from polymodal.ray_batch import RayOptions, WorkerSetupError

            setup_failures = (WorkerSetupError,)

            recipe = functools.partial(cli_agent, profile, config, llm, device, model)
            ray_options = RayOptions(recipe, address=None if ray == "local" else ray, actors=ray_actors)
        try:
            with progress:
                summary = run_batch(agent, jobs, output, files_dir=files_dir, concurrency=concurrency,
                                    retry_failed=retry_failed, on_start=started, on_done=done,
                                    on_interrupt=interrupted, pool=ray_options)
        except setup_failures as exc:  # an option the cluster cannot honour: a usage error, as it is here
            say(err, f"error: {exc}", "red")
            raise typer.Exit(EXIT_USAGE) from None
        failed = failed_ids(output)
        say(err, f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped; results in {output}")
        if failed:
            say(err, f"{len(failed)} job(s) in {output} have errors: {', '.join(failed[:10])} "
                     "(--retry-failed runs them again)", "red")
            raise typer.Exit(EXIT_FAILED)
