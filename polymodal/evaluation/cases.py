"""Evaluation cases: a request, the files it comes with, and the plan it should get.

Two JSONL formats are read, line by line (a file may mix them):

- **TaskBench** (``instruction``, ``task_nodes``, ``task_links``): a node is
  ``{"task": <TaskBench tool>, "arguments": [...]}`` and ``"<node-k>"`` in an argument is node k's
  output. File names in the instruction (``'example.jpg'``, ``example.wav``) become generated
  attachments of their kind; a ``.txt`` name is text, not a file. Gold tool names stay
  TaskBench's: :data:`TASKBENCH_TOOLS` says which polymodal tools count for each, and a task
  using any other tool is skipped (with its reason).
- **polymodal's own**::

      {"id": "sign-aloud", "request": "Read the sign and say it out loud", "attachments": ["image"],
       "steps": [{"tool": "ocr", "uses": ["image_1"]},
                 {"tool": "speech_synthesizer", "uses": ["s1"], "args": {"text": "..."}}]}

  ``attachments`` lists kinds (``"image"``, ``"audio"``, ``"video"``) or ``{"kind", "name"}``
  objects; their ids are given as a conversation gives them (``image_1``, ``audio_1``, ...).
  ``uses`` lists what each expected step consumes: attachment ids and earlier expected steps
  (``s1`` is the first). ``args`` (optional) are argument values the step must have; text is
  compared without case, surrounding quotes or final punctuation, lists as sets.

Either format may carry ``"split": "tuning"`` or ``"held-out"``; without it the case's id decides
its part (:func:`~polymodal.evaluation.splits.split_of`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from polymodal.errors import ConfigurationError
from polymodal.evaluation.splits import Split, split_of
from polymodal.media import Modality

__all__ = ["TASKBENCH_TOOLS", "EvalCase", "ExpectedStep", "load_cases", "parse_case"]

TASKBENCH_TOOLS: dict[str, frozenset[str]] = {
    "Image-to-Text": frozenset({"captioner", "ocr"}),
    "Visual Question Answering": frozenset({"visual_qa"}),
    "Document Question Answering": frozenset({"visual_qa", "ocr"}),
    "Automatic Speech Recognition": frozenset({"transcriber"}),
    "Text-to-Speech": frozenset({"speech_synthesizer"}),
    "Text-to-Image": frozenset({"image_generator"}),
    "Image Classification": frozenset({"clip_matcher", "captioner"}),
    "Audio Classification": frozenset({"emotion_recognizer"}),
}
"""TaskBench (Hugging Face domain) tool -> the polymodal tools that count for it.

Image-to-Text includes ``ocr``: Hugging Face's image-to-text task covers "image captioning or optical
character recognition" (TrOCR is an image-to-text model), and TaskBench's Image-to-Text requests
are mostly "extract the text from this image". Audio Classification counts only for requests about
emotion, mood, feeling or tone (:data:`_EMOTION`); other TaskBench tools have no counterpart."""

_EMOTION = re.compile(r"\b(emotion|mood|feel|feeling|feelings|tone|sentiment)s?\b", re.I)
_NODE_REF = re.compile(r"<node-(\d+)>")
_EXTENSIONS: dict[str, Modality] = {
    **dict.fromkeys(("jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff"), Modality.IMAGE),
    **dict.fromkeys(("wav", "mp3", "flac", "ogg", "m4a", "aac", "opus"), Modality.AUDIO),
    **dict.fromkeys(("mp4", "avi", "mov", "mkv", "webm"), Modality.VIDEO),
}
_FILE_NAME = re.compile(r"(?<![\w/.-])([\w-]+(?:\.[\w-]+)*\.(" + "|".join(_EXTENSIONS) + r"))\b", re.I)
_KINDS = {m.value: m for m in (Modality.IMAGE, Modality.AUDIO, Modality.VIDEO)}


@dataclass(frozen=True)
class ExpectedStep:
    """One step of the expected plan."""

    label: str
    """The gold tool name: a polymodal tool, or a TaskBench tool."""
    tools: frozenset[str]
    """The polymodal tools that count for it (one, unless the label is a TaskBench tool)."""
    uses: tuple[str, ...] = ()
    """Attachment ids and earlier expected steps (``s1`` is the first) it consumes."""
    args: Mapping[str, Any] = field(default_factory=dict)
    """Argument values the step must have (polymodal format only)."""


@dataclass(frozen=True)
class EvalCase:
    """A request, its attachments (kind and file name, in order) and its expected plan."""

    id: str
    request: str
    attachments: tuple[tuple[Modality, str], ...]
    steps: tuple[ExpectedStep, ...]
    source: Literal["taskbench", "polymodal"]
    skipped: str = ""
    """Why the case cannot be scored (a TaskBench tool polymodal has no counterpart for); empty if scored."""
    split: Split = "tuning"
    """The part it belongs to (see :mod:`polymodal.evaluation.splits`): tuning, or held-out (scored only)."""

    @property
    def attachment_ids(self) -> list[str]:
        """The ids a conversation gives these attachments: image_1, audio_1, image_2, ..."""
        return _ids([kind for kind, _ in self.attachments])


def load_cases(path: str | Path, mapping: Mapping[str, frozenset[str]] | None = None) -> list[EvalCase]:
    """Read every case of a JSONL file (TaskBench or polymodal format; blank lines ignored).

    ``mapping`` replaces :data:`TASKBENCH_TOOLS` (TaskBench tool -> the polymodal tools that count).

    Raises:
        ConfigurationError: the file is missing, or a line is not a case (the message names the line).
    """
    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"evaluation file {str(source)!r} cannot be read: {exc}"
        raise ConfigurationError(msg) from exc
    cases = [parse_case(line, f"{source}:{number}", mapping) for number, line in _numbered(lines)]
    if not cases:
        msg = f"evaluation file {str(source)!r} holds no cases"
        raise ConfigurationError(msg)
    return cases


def _numbered(lines: Sequence[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line


def parse_case(line: str, where: str, mapping: Mapping[str, frozenset[str]] | None = None) -> EvalCase:
    """One JSONL line as a case; ``where`` ("file:line") prefixes every error."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        msg = f"{where}: not JSON ({exc.msg} at character {exc.pos})"
        raise ConfigurationError(msg) from exc
    try:
        if isinstance(data, dict) and "instruction" in data and "task_nodes" in data:
            return _taskbench_case(data, where, TASKBENCH_TOOLS if mapping is None else mapping)
        if isinstance(data, dict) and "request" in data:
            return _polymodal_case(data, where)
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{where}: malformed case ({type(exc).__name__}: {exc})"
        raise ConfigurationError(msg) from exc
    msg = f"{where}: neither a TaskBench task (instruction, task_nodes) nor a polymodal case (request, steps)"
    raise ConfigurationError(msg)


def _taskbench_case(data: Mapping[str, Any], where: str, mapping: Mapping[str, frozenset[str]]) -> EvalCase:
    instruction = str(data["instruction"])
    names = list(dict.fromkeys(m.group(1) for m in _FILE_NAME.finditer(instruction)))
    attachments = tuple((_EXTENSIONS[name.rsplit(".", 1)[1].lower()], name) for name in names)
    by_name = dict(zip(names, _ids([kind for kind, _ in attachments]), strict=True))
    steps: list[ExpectedStep] = []
    skipped = ""
    for node in data["task_nodes"]:
        task = str(node["task"])
        tools = frozenset(mapping.get(task, ()))
        if task == "Audio Classification" and not _EMOTION.search(instruction):
            tools = frozenset()
        if not tools and not skipped:
            skipped = f"TaskBench tool {task!r} has no polymodal counterpart"
        uses: list[str] = []
        for argument in node.get("arguments", []):
            text = str(argument)
            uses += [f"s{int(k) + 1}" for k in _NODE_REF.findall(text)]
            uses += [by_name[text.strip()]] if text.strip() in by_name else []
        steps.append(ExpectedStep(task, tools, tuple(dict.fromkeys(uses))))
    case_id = str(data.get("id") or where)
    return EvalCase(case_id, instruction, attachments, tuple(steps), "taskbench", skipped,
                    split_of(case_id, str(data.get("split", ""))))


def _polymodal_case(data: Mapping[str, Any], where: str) -> EvalCase:
    attachments: list[tuple[Modality, str]] = []
    for item in data.get("attachments", []):
        kind, name = (item, "") if isinstance(item, str) else (item["kind"], item.get("name", ""))
        if kind not in _KINDS:
            msg = f"attachment kind {kind!r} (use image, audio or video)"
            raise ValueError(msg)
        attachments.append((_KINDS[kind], name or f"{kind}_{len(attachments) + 1}{_SUFFIX[kind]}"))
    steps = []
    for index, step in enumerate(data.get("steps", [])):
        uses = tuple(str(u) for u in step.get("uses", []))
        for ref in uses:
            if re.fullmatch(r"s\d+", ref) and not 1 <= int(ref[1:]) <= index:
                msg = f"step {index + 1} uses {ref}, which is not an earlier step"
                raise ValueError(msg)
        steps.append(ExpectedStep(str(step["tool"]), frozenset({str(step["tool"])}), uses, dict(step.get("args", {}))))
    case_id = str(data.get("id") or where)
    return EvalCase(case_id, str(data["request"]), tuple(attachments), tuple(steps), "polymodal",
                    split=split_of(case_id, str(data.get("split", ""))))


_SUFFIX = {"image": ".png", "audio": ".wav", "video": ".mp4"}


def _ids(kinds: Sequence[Modality]) -> list[str]:
    counts: dict[Modality, int] = {}
    ids = []
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
        ids.append(f"{kind.value}_{counts[kind]}")
    return ids
