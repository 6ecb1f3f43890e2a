"""The typer app behind ``polymodal`` (imported only when the ``cli`` extra is installed).

Everything a model or a file name produced is untrusted: it is printed as plain text (rich markup
such as ``[red]`` stays literal) with terminal control characters escaped (RELIABILITY R5/A9).
Errors print as one line; ``--debug`` adds the traceback.

Exit codes, the same for every command (docs/cli.md, "Command line"): 0 answered; 1 failed (no answer,
or an error while answering); 2 usage (the command line or a setting is wrong, found before any
work); 3 answered, but some steps failed (the answer is built from the rest).
"""

from __future__ import annotations

import json
import sys
import traceback
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
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
from rich.table import Table
from rich.text import Text

from polymodal.errors import ConfigurationError, MissingDependencyError, PolymodalError

if TYPE_CHECKING:
    from polymodal.agent import Reply

app = typer.Typer(
    name="polymodal",
    help="Multimodal requests answered by local models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
_EXIT_FOR = {"answered": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED}
_SEVERITY = {EXIT_OK: 0, EXIT_PARTIAL: 1, EXIT_FAILED: 2}

ProfileOpt = Annotated[str | None, typer.Option("--profile", "-p", metavar="NAME",
                                                help="model profile: default or offline")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", metavar="FILE", help="TOML file choosing models per tool")]
LlmOpt = Annotated[str | None, typer.Option("--llm", metavar="MODEL",
                                            help="a local chat model (folder or .gguf) for planning and answers")]
DeviceOpt = Annotated[str | None, typer.Option("--device", metavar="DEVICE",
                                               help="cpu, cuda, cuda:1, mps (default: best available)")]
ModelOpt = Annotated[list[str] | None, typer.Option(
    "--model", "-m", metavar="TOOL=MODEL", help="use MODEL (folder, hub id, packaged:NAME) for TOOL; repeatable")]
DebugOpt = Annotated[bool, typer.Option("--debug", metavar="", help="show tracebacks")]
OutputDirOpt = Annotated[Path, typer.Option("--output-dir", "-o", metavar="DIR", help="where generated media go")]


def safe(text: object) -> str:
    """Escape terminal control characters (ANSI escapes, NUL, bidi overrides); keep newlines and tabs."""
    return "".join(
        ch if ch in "\n\t" or unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Zl", "Zp"}
        else (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        for ch in str(text)
    )


def say(console: Console, text: object, style: str | None = None) -> None:
    """Print untrusted text literally: no markup, no control characters."""
    console.print(Text(safe(text), style=style or ""))


@contextmanager
def errors_as_lines(debug: bool, code: int = EXIT_FAILED) -> Iterator[None]:
    """Turn any failure into one readable line and exit with ``code`` (EXIT_USAGE while checking options)."""
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except PolymodalError as exc:
        if debug:
            err.print(Text(safe(traceback.format_exc())))
        say(err, f"error: {exc}", "red")
        raise typer.Exit(code) from None
    except Exception as exc:
        if debug:
            err.print(Text(safe(traceback.format_exc())))
        say(err, f"internal error: {type(exc).__name__}: {exc} (run again with --debug for the traceback)", "red")
        raise typer.Exit(EXIT_FAILED) from None


def exit_code(reply: Reply) -> int:
    """The exit code for a reply (0 answered, 3 partly, 1 not at all); failed steps are named on stderr."""
    code = _EXIT_FOR[reply.outcome]
    failed = [step for step in reply.steps if not step.ok]
    if failed and code != EXIT_OK:
        names = ", ".join(f"{step.id} ({step.tool})" for step in failed)
        say(err, f"{len(failed)} of {len(reply.steps)} step(s) did not succeed: {names}", "yellow")
    return code


def _worse(a: int, b: int) -> int:
    return a if _SEVERITY.get(a, 2) >= _SEVERITY.get(b, 2) else b


def _overrides(models: list[str] | None) -> dict[str, str]:
    """``--model TOOL=MODEL`` pairs, checked before any work: a known tool, a usable folder."""
    from polymodal.profiles import TOOL_CLASSES
    from polymodal.tools.loading import folder_problem, looks_like_path

    found: dict[str, str] = {}
    for item in models or []:
        tool, sep, spec = (part.strip() for part in item.partition("="))
        if not sep or not tool or not spec:
            msg = f"--model expects TOOL=MODEL, got {item!r}"
            raise ConfigurationError(msg)
        if tool not in TOOL_CLASSES:
            msg = f"--model {item!r}: unknown tool {tool!r} (known: {', '.join(TOOL_CLASSES)})"
            raise ConfigurationError(msg)
        problem = folder_problem(Path(spec).expanduser()) if looks_like_path(spec) else None
        if problem:
            msg = f"--model {item!r}: model folder {spec!r} {problem}"
            raise ConfigurationError(msg)
        found[tool] = spec
    return found


def _read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    """The request: the argument, stdin for ``-``, or a file (no command-line length limit for the last two)."""
    if prompt is not None and prompt_file is not None:
        msg = "give the request as PROMPT or with --prompt-file, not both"
        raise ConfigurationError(msg)
    if prompt_file is not None:
        try:
            return prompt_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"--prompt-file {str(prompt_file)!r} cannot be read: {exc}"
            raise ConfigurationError(msg) from exc
    if prompt is None:
        msg = 'no request: polymodal run "PROMPT", or - to read it from stdin, or --prompt-file FILE'
        raise ConfigurationError(msg)
    return sys.stdin.read() if prompt == "-" else prompt


def _load_llm(spec: str | None, device: str | None) -> Any:
    """A chat model from a local folder or a .gguf file, through the LLM backends when installed."""
    if not spec:
        return None
    try:
        import polymodal.llms as llms  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        msg = f"--llm {spec!r}: this install has no local LLM backends (polymodal.llms)"
        raise ConfigurationError(msg) from exc
    name = "gguf_chat_model" if spec.lower().endswith(".gguf") else "local_chat_model"
    loader = getattr(llms, name, None)
    if not callable(loader):
        msg = f"--llm {spec!r}: polymodal.llms has no {name}()"
        raise ConfigurationError(msg)
    return loader(spec, device=device)


def cli_agent(profile: str | None, config: Path | None, llm: str | None, device: str | None,
              models: list[str] | None, notes: list[str] | None = None, settings: Any = None) -> Any:
    """The agent the command-line options describe (also what each Ray actor of ``batch --ray`` builds).

    Every option is checked before anything loads: a bad one is a ConfigurationError (exit 2).
    """
    from polymodal.profiles import build_agent
    from polymodal.tools.cache import check_device

    overrides = _overrides(models)
    if device:
        check_device(device, "--device")
    return build_agent(profile, _load_llm(llm, device), overrides=overrides, config=config, device=device,
                       notes=notes, settings=settings)


def _check_options(profile: str | None, config: Path | None, models: list[str] | None) -> None:
    """What the driver of ``batch --ray`` checks before any actor starts: the profile, config and overrides."""
    from polymodal.profiles import select

    select(profile, _overrides(models), config=config)


def _agent(profile: str | None, config: Path | None, llm: str | None, device: str | None,
           models: list[str] | None, debug: bool = False, settings: Any = None) -> Any:
    notes: list[str] = []
    with err.status("loading tools…"):
        agent = cli_agent(profile, config, llm, device, models, notes, settings)
    for note in notes if debug else []:  # `polymodal models` shows the same facts as a table
        say(err, f"note: {note}", "dim")
    return agent


def _show_artifacts(record: dict[str, Any]) -> None:
    for item in record.get("artifacts", []):
        if item.get("path"):
            say(out, f"saved {item['id']} ({item['mime_type']}): {item['path']}")


@app.command()
def run(
    prompt: Annotated[str | None, typer.Argument(metavar="PROMPT", show_default=False,
                                                 help='the request; "-" reads it from stdin')] = None,
    attach: Annotated[list[Path] | None, typer.Option("--attach", "-a", metavar="FILE",
                                                      help="a file to attach (repeatable)")] = None,
    prompt_file: Annotated[Path | None, typer.Option("--prompt-file", "-f", metavar="FILE",
                                                     help="read the request from a UTF-8 text file")] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="print the whole Reply as JSON")] = False,
    output_dir: OutputDirOpt = Path("polymodal-output"),
    profile: ProfileOpt = None,
    config: ConfigOpt = None,
    llm: LlmOpt = None,
    device: DeviceOpt = None,
    model: ModelOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Answer one request, e.g. polymodal run "What does this voice note say?" -a note.wav

    Exit code: 0 answered, 1 failed, 2 usage error, 3 answered but some steps failed.
    """
    from polymodal.batch import reply_record

    with errors_as_lines(debug, EXIT_USAGE):
        text = _read_prompt(prompt, prompt_file)
        agent = _agent(profile, config, llm, device, model, debug)
    with errors_as_lines(debug):
        with err.status("working…"):
            reply = agent.chat(text, [str(p) for p in attach or []])
        record = reply_record(reply, output_dir if reply.artifacts else None)
        if as_json:
            sys.stdout.write(json.dumps(record, indent=2, ensure_ascii=True) + "\n")
        else:
            say(out, reply.text)
            _show_artifacts(record)
    code = exit_code(reply)
    if code:
        raise typer.Exit(code)


CHAT_HELP = """commands:
  /attach PATH   attach a file to your next message
  /reset         start a new conversation (loaded models stay loaded)
  /help          this list
  /quit          leave (also /exit, or end of input: Ctrl-D)
a message that starts with / is sent as typed if you write it with // (//etc/hosts -> /etc/hosts)"""


@app.command()
def chat(
    profile: ProfileOpt = None,
    config: ConfigOpt = None,
    llm: LlmOpt = None,
    device: DeviceOpt = None,
    model: ModelOpt = None,
    output_dir: OutputDirOpt = Path("polymodal-output"),
    debug: DebugOpt = False,
) -> None:
    """An interactive session: type a message; /attach PATH adds a file; /help lists the commands.

    Exit code on /quit or end of input: the worst of the session's turns (1 if any failed, 3 if any
    was answered only in part, else 0); 2 if the options are wrong.
    """
    from polymodal.batch import reply_record
    from polymodal.media import Attachment

    with errors_as_lines(debug, EXIT_USAGE):
        agent = _agent(profile, config, llm, device, model, debug)
    say(err, "polymodal chat: /attach PATH to add a file, /help for the commands, /quit to leave", "dim")
    pending: list[Attachment] = []
    worst = EXIT_OK
    while True:
        err.print("you> ", end="")
        line = sys.stdin.readline()
        if not line:
            err.print()  # end of input: leave the terminal on a fresh line
            break
        text = line.strip()
        if not text:
            continue
        if text.startswith("/") and not text.startswith("//"):
            command, _, argument = text.partition(" ")
            if command in ("/quit", "/exit"):
                break
            _chat_command(agent, command, argument.strip(), pending)
            continue
        try:
            reply = agent.chat(text[1:] if text.startswith("//") else text, pending)
        except PolymodalError as exc:
            say(err, f"error: {exc}", "red")
            worst = _worse(worst, EXIT_FAILED)
            continue
        except Exception as exc:
            if debug:
                err.print(Text(safe(traceback.format_exc())))
            say(err, f"internal error: {type(exc).__name__}: {exc}", "red")
            worst = _worse(worst, EXIT_FAILED)
            continue
        pending.clear()
        say(out, reply.text)
        _show_artifacts(reply_record(reply, output_dir if reply.artifacts else None))
        worst = _worse(worst, exit_code(reply))
    if worst:
        raise typer.Exit(worst)


def _chat_command(agent: Any, command: str, argument: str, pending: list[Any]) -> None:
    """Run one ``/command`` of a chat session; nothing here is ever sent to the model."""
    from polymodal.media import Attachment

    if command == "/help":
        say(err, CHAT_HELP, "dim")
    elif command == "/reset":
        agent.reset()
        pending.clear()
        say(err, "conversation cleared", "dim")
    elif command == "/attach" and not argument:
        say(err, "usage: /attach PATH (the file is sent with your next message)", "red")
    elif command == "/attach":
        try:
            pending.append(Attachment.from_path(argument, agent.settings.limits))
        except PolymodalError as exc:
            say(err, f"error: {exc}", "red")
            return
        say(err, f"attached {pending[-1].describe()} (sent with your next message)", "dim")
    else:
        say(err, f"unknown command {command}: /help lists the commands (start with // to send a / message)", "red")


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
        failed = _failed_in(output)
        say(err, f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped; results in {output}")
        if failed:
            say(err, f"{len(failed)} job(s) in {output} have errors: {', '.join(failed[:10])} "
                     "(--retry-failed runs them again)", "red")
            raise typer.Exit(EXIT_FAILED)


def _failed_in(output: Path) -> list[str]:
    failed = []
    for line in output.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("ok") is False:
            failed.append(str(record.get("id")))
    return failed


@app.command()
def models(
    profile: ProfileOpt = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    debug: DebugOpt = False,
) -> None:
    """The tools, the model each will use, whether it is available locally, and its size."""
    from polymodal.model_status import describe_selection
    from polymodal.profiles import select

    with errors_as_lines(debug, EXIT_USAGE):
        selection = select(profile, _overrides(model), config=config)
        say(out, f"profile: {selection.profile} ({selection.reason})")
        table = Table("tool", "status", "model", "local", "size", "from")
        for row in describe_selection(selection):
            table.add_row(*(Text(safe(cell)) for cell in row))
        print_table(table)
        say(out, "override a tool's model with --model TOOL=MODEL, POLYMODAL_MODEL_<TOOL>=MODEL or polymodal.toml")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8000,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="POLYMODAL_API_KEY", help="required on every request when set (env POLYMODAL_API_KEY)",
        show_default=False)] = None,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1, help="turns answered at once")] = 4,
    max_queue: Annotated[int, typer.Option("--max-queue", min=0, help="requests that may wait; past it, 429")] = 16,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001, help="largest attachment, MB")] = 32.0,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="the web chat page at /")] = True,
    preload: Annotated[bool, typer.Option("--preload/--no-preload", help="load every model at start-up")] = True,
    profile: ProfileOpt = None,
    config: ConfigOpt = None,
    llm: LlmOpt = None,
    device: DeviceOpt = None,
    model: ModelOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Serve an OpenAI-compatible API at /v1 and a chat page at /, e.g. polymodal serve --profile offline"""
    from polymodal.config import Settings
    from polymodal.media import MediaLimits

    with errors_as_lines(debug, EXIT_USAGE):  # everything before serving is setting up: a failure is exit 2
        try:
            import uvicorn

            from polymodal.serving import ServeSettings, create_app
        except ImportError as exc:
            raise MissingDependencyError("polymodal serve", exc.name or "fastapi", "serve") from exc
        limits = MediaLimits(max_bytes=int(max_upload_mb * 1024**2))
        agent = _agent(profile, config, llm, device, model, debug, settings=Settings(limits=limits))
        settings = ServeSettings(api_key=api_key or None, max_concurrency=max_concurrency, max_queue=max_queue,
                                 max_request_bytes=max(64 * 1024**2, 2 * limits.max_bytes), ui=ui, preload=preload)
        application = create_app(agent, settings)
        where = f"http://{host if host != '0.0.0.0' else '127.0.0.1'}:{port}"
        say(err, f"polymodal: API at {where}/v1" + (f", chat page at {where}/" if ui else "") +
            (" (API key required)" if api_key else ""))
    uvicorn.run(application, host=host, port=port, log_level="debug" if debug else "info",
                timeout_graceful_shutdown=30, ws="none")


@app.command()
def doctor(device: DeviceOpt = None, debug: DebugOpt = False) -> None:
    """Check the machine: Python, torch and the device models will use, PyAV, extras, the hub, the cache.

    The hub is probed for real (at most a couple of seconds). Exit code 0 whatever is missing: each
    row says what a missing part is for.
    """
    from polymodal.model_status import doctor_checks

    with errors_as_lines(debug):
        table = Table("check", "result")
        bad = 0
        for name, ok, detail in doctor_checks(device):
            bad += not ok
            table.add_row(Text(name), Text(("ok  " if ok else "NO  ") + safe(detail), style="" if ok else "yellow"))
        print_table(table)
        if bad:
            say(err, f"{bad} check(s) not passed; each line says what it is for and what to do", "dim")


def print_table(table: Table) -> None:
    """Print a table without cutting any cell: into a pipe or a file at the width it needs; on a
    terminal, long cells fold onto the next line instead of ending in "…"."""
    for column in table.columns:
        column.overflow = "fold"
    if out.is_terminal:
        out.print(table)
        return
    width = Measurement.get(out, out.options.update_width(10_000), table).maximum
    Console(highlight=False, width=max(width, out.width)).print(table)  # out caps every print at its own width



@app.command("eval")
def eval_(
    cases: Annotated[Path, typer.Argument(help="JSONL cases: TaskBench tasks or polymodal's own format")],
    planner: Annotated[str, typer.Option("--planner", help="router, tiered, defaults or llm (needs --llm)")] = "tiered",
    as_json: Annotated[bool, typer.Option("--json", help="print the summary and every case as JSON")] = False,
    show: Annotated[str, typer.Option("--show", help="cases to list under the table: misses, all or none")] = "misses",
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
    from polymodal.evaluation import TASKBENCH_TOOLS, evaluate, load_cases, make_planner

    with errors_as_lines(debug, EXIT_USAGE):  # the options: a wrong one is a usage error, nothing has run
        if show not in ("misses", "all", "none"):
            msg = f"--show expects misses, all or none, got {show!r}"
            raise ConfigurationError(msg)
        tool_map = {**TASKBENCH_TOOLS, **_mapping(mapping)}
        tools, router = _eval_tools(profile, config, model, device)
        chosen = make_planner(planner, llm=_load_llm(llm, device), router=router)  # type: ignore[arg-type]
    with errors_as_lines(debug):  # a cases file that cannot be read is a bad file, as for `run`: exit 1
        loaded = load_cases(cases, tool_map)
        total = sum(not case.skipped for case in loaded)
        with err.status(f"planning {total} cases…") as status:
            done: list[int] = []

            def advance(_result: Any) -> None:
                done.append(1)
                status.update(f"planning case {len(done)}/{total}…")

            report = evaluate(loaded, chosen, tools, name=planner, on_case=advance)
        if as_json:
            sys.stdout.write(json.dumps(report.to_dict(), indent=2, ensure_ascii=True) + "\n")
            return
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
