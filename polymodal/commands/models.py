"""``polymodal models`` and ``polymodal doctor``: what would load, and whether this machine can run it."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from polymodal.commands._common import (
    EXIT_USAGE,
    ConfigOpt,
    DebugOpt,
    DeviceOpt,
    ModelOpt,
    ProfileOpt,
    _overrides,
    app,
    err,
    errors_as_lines,
    out,
    print_table,
    safe,
    say,
)


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
