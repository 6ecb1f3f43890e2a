"""The suite's skip policy, as pytest hooks: only ``gpu`` tests may skip, and only without CUDA.

"0 skipped but gpu" is a promise CI keeps: a test that skips because an extra, a system package
(espeak-ng, chromium) or a packaged model is missing has not run, and nobody notices a skip in a
long summary. With ``POLYMODAL_STRICT_SKIPS=1`` (set by ``.ci/run``) such a skip — at collection
(a module-level ``importorskip``) or in a test — is reported as a failure naming its reason.
Locally, without the variable, skips stay skips (a developer may lack chromium), and pytest's
``-ra`` summary names each one.

``tests/conftest.py`` imports these hooks; ``pytest -p support.skips`` loads them alone.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

STRICT_ENV = "POLYMODAL_STRICT_SKIPS"
GPU_REASON = "needs a CUDA GPU (torch.cuda.is_available() is False)"


def strict() -> bool:
    """Whether a non-gpu skip is a failure in this run."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` unless CUDA is available (torch imported only if such tests exist)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=GPU_REASON)
    for item in gpu_items:
        item.add_marker(skip)


def _reason(longrepr: Any) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """A skipped test that is not marked ``gpu`` fails under ``POLYMODAL_STRICT_SKIPS``."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and strict() and not item.get_closest_marker("gpu"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but only gpu tests may skip ({STRICT_ENV}=1): {_reason(report.longrepr)}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    """A module skipped while collecting (``importorskip`` at its top) fails under ``POLYMODAL_STRICT_SKIPS``."""
    report = yield
    if report.skipped and strict():
        report.outcome = "failed"
        report.longrepr = f"skipped while collecting ({STRICT_ENV}=1): {_reason(report.longrepr)}"
    return report
