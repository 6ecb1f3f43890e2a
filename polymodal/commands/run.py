"""``polymodal run`` and ``polymodal chat``: one request, or a conversation at the prompt."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from polymodal.commands._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ConfigOpt,
    DebugOpt,
    DeviceOpt,
    LlmOpt,
    ModelOpt,
    OutputDirOpt,
    ProfileOpt,
    _agent,
    _read_prompt,
    _show_artifacts,
    _worse,
    app,
    err,
    errors_as_lines,
    exit_code,
    out,
    safe,
    say,
)
from polymodal.errors import PolymodalError


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
    with errors_as_lines(debug, EXIT_USAGE):
        text = _read_prompt(prompt, prompt_file)
        agent = _agent(profile, config, llm, device, model, debug)
    with errors_as_lines(debug):
        with err.status("working…"):
            reply = agent.chat(text, [str(p) for p in attach or []])
        record = reply.to_record(output_dir if reply.artifacts else None)
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
        _show_artifacts(reply.to_record(output_dir if reply.artifacts else None))
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
