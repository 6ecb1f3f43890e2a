"""The public surface stays deliberate: ``__all__`` is sorted, complete, and importable."""

from __future__ import annotations

import polymodal
import polymodal.errors
import polymodal.tools


def test_all_is_sorted_and_every_name_exists():
    for module in (polymodal, polymodal.tools, polymodal.errors):
        names = list(module.__all__)
        assert names == sorted(names), f"{module.__name__}.__all__ is not sorted"
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.{name} is in __all__ but missing"


def test_every_public_error_is_a_polymodal_error():
    for name in polymodal.errors.__all__:
        assert issubclass(getattr(polymodal.errors, name), polymodal.errors.PolymodalError)


def test_importing_polymodal_imports_none_of_the_heavy_stacks():
    """`import polymodal` must be cheap (issue 14.11): names load on first use, not all up front."""
    import subprocess
    import sys
    from pathlib import Path

    heavy = ("torch", "transformers", "langchain_core", "av", "numpy", "PIL")
    script = f"import sys, polymodal; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=root)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
