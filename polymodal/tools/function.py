"""Custom tools from typed functions: ``@polymodal.tool``.

The function's signature becomes the args schema (extra arguments forbidden) and its docstring
the description the planner reads. A parameter annotated with a media type declares that the
tool takes that modality, and the planner passes an attachment id for it:

- ``PIL.Image.Image``: the function receives the decoded RGB image;
- ``ImageInput`` / ``AudioInput`` / ``VideoInput``: it receives the :class:`Attachment` itself.

The function returns text, ``(text, artifact)``, a PIL image or an Attachment (new media get an
id in the conversation and can feed a later step), or a :class:`ToolOutput`. The return annotation
tells plan validation what a later step receives: ``-> PIL.Image.Image`` (or ``-> ImageInput``,
``AudioInput``, ``VideoInput``) lets a later step take the output as media; anything else is text.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, get_args, get_origin, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, create_model

from polymodal.errors import ConfigurationError
from polymodal.media import Attachment, Modality
from polymodal.tools.base import AudioRef, ImageRef, Tool, ToolOutput, VideoRef

__all__ = ["AudioInput", "FunctionTool", "ImageInput", "VideoInput", "tool"]

ImageInput = Annotated[Attachment, Modality.IMAGE]
AudioInput = Annotated[Attachment, Modality.AUDIO]
VideoInput = Annotated[Attachment, Modality.VIDEO]
_REFS = {Modality.IMAGE: ImageRef, Modality.AUDIO: AudioRef, Modality.VIDEO: VideoRef}


class FunctionTool(Tool):
    """A tool made from a plain function by :func:`tool`."""

    func: Callable[..., Any]
    decoded_images: frozenset[str] = frozenset()
    """Parameters that receive a decoded PIL image rather than the Attachment."""
    returns: Modality = Modality.TEXT
    """What the function's output is, from its return annotation (see the module docstring)."""

    @property
    def output_modality(self) -> Modality:  # type: ignore[override]  # per function; other tools: per class
        return self.returns

    def execute_batch(self, inputs: Sequence[dict[str, Any]]) -> list[ToolOutput]:
        return [self._call(dict(item)) for item in inputs]

    def _call(self, kwargs: dict[str, Any]) -> ToolOutput:
        for name in self.decoded_images:
            if isinstance(kwargs.get(name), Attachment):
                kwargs[name] = kwargs[name].image()
        return as_output(self.func(**kwargs))


def as_output(value: Any) -> ToolOutput:
    """Normalise what a tool function returned into a ToolOutput."""
    if isinstance(value, ToolOutput):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return ToolOutput(content=str(value[0]), artifact=value[1])
    if _is_pil_image(value):
        value = Attachment.from_image(value, name="generated.png")
    if isinstance(value, Attachment):
        return ToolOutput(content=f"(produced {value.describe()})", artifact=value)
    return ToolOutput(content="" if value is None else str(value))


def _is_pil_image(value: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a core dependency
        return False
    return isinstance(value, Image.Image)


@overload
def tool(func: Callable[..., Any], /) -> FunctionTool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, timeout: float | None = None
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a polymodal tool (also a LangChain tool) from a typed function.

    Usable bare (``@tool``) or with options (``@tool(name="count_faces", timeout=10)``).
    """

    def build(fn: Callable[..., Any]) -> FunctionTool:
        doc = inspect.getdoc(fn) or ""
        summary = doc.split("\n\n")[0].strip() if doc else ""
        text = description or summary
        if not text:
            msg = f"tool {fn.__name__!r} needs a docstring or description=: the planner chooses tools by it"
            raise ConfigurationError(msg)
        schema, decoded = _args_schema(fn, _arg_docs(doc))
        returned = get_type_hints(fn, include_extras=True).get("return")
        returns = Modality.TEXT if returned is Attachment else (_media_modality(returned) or Modality.TEXT)
        return FunctionTool(
            name=name or fn.__name__,
            description=" ".join(text.split()),
            args_schema=schema,
            func=fn,
            decoded_images=frozenset(decoded),
            returns=returns,
            timeout=timeout,
        )

    return build(func) if func is not None else build


def _args_schema(fn: Callable[..., Any], docs: dict[str, str]) -> tuple[type[BaseModel], list[str]]:
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    decoded: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            msg = f"tool {fn.__name__!r}: *args/**kwargs cannot be described to a planner; name each argument"
            raise ConfigurationError(msg)
        annotation = hints.get(param.name, str)
        modality = _media_modality(annotation)
        if modality is not None:
            annotation = _REFS[modality]
            if _is_pil_class(hints.get(param.name)):
                decoded.append(param.name)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, Field(default=default, description=docs.get(param.name)))
    model = create_model(f"{fn.__name__}_args", __config__=ConfigDict(extra="forbid"), **fields)
    return model, decoded


def _media_modality(annotation: Any) -> Modality | None:
    if _is_pil_class(annotation):
        return Modality.IMAGE
    if get_origin(annotation) is Annotated:
        base, *meta = get_args(annotation)
        if base is Attachment:
            for item in meta:
                if isinstance(item, Modality):
                    return item
    if annotation is Attachment:
        msg = "annotate media parameters with ImageInput, AudioInput or VideoInput (or PIL.Image.Image)"
        raise ConfigurationError(msg)
    return None


def _is_pil_class(annotation: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return annotation is Image.Image


def _arg_docs(doc: str) -> dict[str, str]:
    """Per-argument descriptions from a Google-style ``Args:`` section."""
    match = re.search(r"^\s*(Args|Arguments|Parameters):\s*$(.*?)(^\s*\w+:\s*$|\Z)", doc, re.M | re.S)
    if not match:
        return {}
    found: dict[str, str] = {}
    for line in match.group(2).splitlines():
        item = re.match(r"^\s*(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", line)
        if item:
            found[item.group(1)] = item.group(2).strip()
    return found
