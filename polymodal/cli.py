"""The ``polymodal`` command: ``run``, ``chat``, ``batch``, ``serve``, ``eval``, ``models``, ``doctor``.

The command line is an extra (``pip install 'polymodal[cli]'``: typer and rich). Without it,
:func:`main` prints that install hint instead of crashing on an ImportError.
"""

from __future__ import annotations

import logging
import os
import re
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

    args = _bare_ray(list(argv) if argv is not None else sys.argv[1:])
    try:
        app(args=args, prog_name="polymodal", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def _bare_ray(args: list[str]) -> list[str]:
    """``--ray`` with no address after it means "RAY_ADDRESS, or a local instance" (typer has no optional values)."""
    fixed: list[str] = []
    for i, arg in enumerate(args):
        fixed.append(arg)
        if arg == "--ray":
            following = args[i + 1] if i + 1 < len(args) else ""
            if not _looks_like_address(following):
                fixed.append("local")
    return fixed


def _looks_like_address(text: str) -> bool:
    return text in ("auto", "local") or "://" in text or bool(re.fullmatch(r"[\w.-]+:\d+", text))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
