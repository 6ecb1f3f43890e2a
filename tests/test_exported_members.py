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
