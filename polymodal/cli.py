"""The ``polymodal`` command: ``run``, ``chat``, ``batch``, ``serve``, ``eval``, ``models``, ``doctor``.

The command line is an extra (``pip install 'polymodal[cli]'``: typer and rich). Without it,
:func:`main` prints that install hint instead of crashing on an ImportError.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

INSTALL_HINT = "polymodal's command line needs the 'cli' extra: pip install 'polymodal[cli]'"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``polymodal`` script; returns the exit code."""
    try:
        import rich  # noqa: F401
        import typer  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    # Library chatter (experimental-feature warnings, weight-loading bars, OCR model checks) is not
    # the user's business on a command line; --debug-level detail stays available through logging.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    from polymodal.commands import app

    try:
        app(args=list(argv) if argv is not None else None, prog_name="polymodal", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
