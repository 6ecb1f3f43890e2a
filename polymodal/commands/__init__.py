"""The typer app behind ``polymodal``: one module per command (imported only with the ``cli`` extra).

``_common`` holds the app, the shared options, exit codes and the untrusted-text printing every
command uses; importing this package registers every command on :data:`app`. A new command is a
new module here plus one import line below.
"""

from __future__ import annotations

from polymodal.commands import batch, evaluate, mcp, models, run, serve, sessions  # noqa: F401  (registers the commands)
from polymodal.commands._common import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, app, safe
from polymodal.commands.batch import _RateColumn

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "app", "safe", "_RateColumn"]
