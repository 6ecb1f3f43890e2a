"""The skip policy (tests/support/skips.py) on small generated suites, run in-process by pytester.

CI promises "0 skipped but gpu": a ``gpu`` test skips only without CUDA, and with
``POLYMODAL_STRICT_SKIPS=1`` any other skip (in a test, or a module-level ``importorskip``) fails.
"""

from __future__ import annotations

import pytest
import torch  # imported before any in-process run: pytester restores sys.modules, torch cannot load twice

SUITE = '''
import pytest

@pytest.mark.gpu
def test_on_gpu():
    pass

def test_skips_itself():
    pytest.skip("espeak-ng is not installed")

@pytest.mark.skipif(True, reason="the ocr extra is missing")
def test_skipif():
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    raise AssertionError

def test_plain():
    pass
'''


@pytest.fixture
def cuda() -> bool:
    return bool(torch.cuda.is_available())


MISSING_EXTRA = ("import pytest\n"
                 "pytest.importorskip('no_such_package_xyz', reason='the router extra is missing')\n"
                 "def test_never_collected():\n    pass\n")


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, strict: str | None,
        **files: str) -> pytest.RunResult:
    if strict is None:
        monkeypatch.delenv("POLYMODAL_STRICT_SKIPS", raising=False)
    else:
        monkeypatch.setenv("POLYMODAL_STRICT_SKIPS", strict)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\nmarkers =\n    gpu: needs a CUDA GPU\n")
    pytester.makepyfile(**files)
    return pytester.runpytest_inprocess("-p", "support.skips", "-rs", "-W", "ignore::pytest.PytestAssertRewriteWarning")


def test_without_strict_mode_skips_stay_skips_and_are_named(pytester, monkeypatch, cuda):
    result = run(pytester, monkeypatch, None, test_suite=SUITE, test_missing_extra=MISSING_EXTRA)
    result.assert_outcomes(passed=1 + cuda, skipped=4 - cuda, xfailed=1)
    for reason in ("espeak-ng is not installed", "the ocr extra is missing", "the router extra is missing"):
        result.stdout.fnmatch_lines([f"SKIPPED*{reason}*"])  # -rs names every skip


def test_strict_mode_fails_every_skip_but_the_gpu_ones(pytester, monkeypatch, cuda):
    result = run(pytester, monkeypatch, "1", test_suite=SUITE)
    # pytest.skip() inside the test fails it; a skip mark acts at setup, so it becomes an error there.
    result.assert_outcomes(passed=1 + cuda, skipped=0 if cuda else 1, failed=1, errors=1, xfailed=1)
    for line in ("*only gpu tests may skip*espeak-ng is not installed*",
                 "*only gpu tests may skip*the ocr extra is missing*"):
        result.stdout.fnmatch_lines([line])
    if not cuda:
        result.stdout.fnmatch_lines(["SKIPPED*needs a CUDA GPU*"])


def test_strict_mode_stops_on_a_module_skipped_while_collecting(pytester, monkeypatch):
    result = run(pytester, monkeypatch, "1", test_suite=SUITE, test_missing_extra=MISSING_EXTRA)
    assert result.ret != 0
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*skipped while collecting*the router extra is missing*"])


def test_strict_mode_off_when_set_to_zero(pytester, monkeypatch, cuda):
    result = run(pytester, monkeypatch, "0", test_suite=SUITE, test_missing_extra=MISSING_EXTRA)
    result.assert_outcomes(passed=1 + cuda, skipped=4 - cuda, xfailed=1)
