"""The typer app behind ``polymodal`` (imported only when the ``cli`` extra is installed).

Everything a model or a file name produced is untrusted: it is printed as plain text (rich markup
such as ``[red]`` stays literal) with terminal control characters escaped (RELIABILITY R5/A9).
Errors print as one line; ``--debug`` adds the traceback.

Exit codes, the same for every command (docs/cli.md, "Command line"): 0 answered; 1 failed (no answer,
or an error while answering); 2 usage (the command line or a setting is wrong, found before any
work); 3 answered, but some steps failed (the answer is built from the rest).
"""

from __future__ import annotations

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
from rich.table import Table
from rich.text import Text

from polymodal.errors import ConfigurationError, PolymodalError

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
    from polymodal.runtime.loading import folder_problem, looks_like_path

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
    from polymodal.runtime.cache import check_device

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


def session_store_url(given: str | None, config: Path | None) -> str:
    """Where ``polymodal serve`` keeps its sessions: ``--session-store`` (or its env), else the config's
    ``[serve] session_store``, else the sqlite file in the user's data folder. ``polymodal sessions``
    reads the same, so operators' commands open the store the server uses."""
    from polymodal.profiles import load_config
    from polymodal.sessions import default_url

    if given is not None:
        return given
    data, _ = load_config(config)
    serve_section = data.get("serve") or {}
    configured = serve_section.get("session_store") if isinstance(serve_section, dict) else None
    return str(configured) if configured else default_url()
