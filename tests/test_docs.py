"""README matches the code it describes (issue 14.7): fields it names exist, sections cited exist."""

from __future__ import annotations

import re
from pathlib import Path

from polymodal.agent import Reply, StepResult
from polymodal.commands import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def attributes(cls: type) -> set[str]:
    return set(getattr(cls, "model_fields", {})) | {name for name in dir(cls) if not name.startswith("_")}


def test_every_reply_attribute_the_readme_uses_exists():
    used = set(re.findall(r"\breply\.(\w+)", README))
    assert used and used <= attributes(Reply), used - attributes(Reply)
    per_step = re.search(r"reply\.steps\s+# per step: ([^\n]+)", README)
    assert per_step is not None
    named = {word for word in re.findall(r"[a-z_]+", per_step.group(1))}
    assert named <= attributes(StepResult), named - attributes(StepResult)


def test_every_readme_section_the_code_cites_exists():
    headings = {line.lstrip("#").strip() for line in README.splitlines() if line.startswith("#")}
    cited: dict[str, str] = {}
    sources = [*(ROOT / "polymodal").rglob("*.py"), *(ROOT / "examples").glob("*.py"), *(ROOT / "bench").glob("*.py")]
    for path in sources:
        text = " ".join(path.read_text(encoding="utf-8").split())  # a citation may be split across lines
        for section in re.findall(r'README(?:\'s|,)\s*"([^"]+)"', text):
            cited[section] = str(path.relative_to(ROOT))
    assert cited, "no citation found: the pattern is wrong"
    missing = {section: where for section, where in cited.items() if section not in headings}
    assert not missing, missing


def test_the_exit_codes_table_is_the_cli_s():
    table = dict(re.findall(r"^\| (\d) \| ([a-z]+)", README, re.MULTILINE))
    assert table == {str(EXIT_OK): "answered", str(EXIT_FAILED): "failed", str(EXIT_USAGE): "usage",
                     str(EXIT_PARTIAL): "answered"}
    assert "<jobs>.results.jsonl" in README  # where batch writes without -o
