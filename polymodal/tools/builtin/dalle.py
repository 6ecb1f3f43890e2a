"""DallEImageGenerator: text -> image through OpenAI's images API (DALL·E), via langchain-community.

A separate class from the diffusers :class:`~polymodal.tools.builtin.image_generator.ImageGenerator`
rather than a ``backend`` field on it, for two reasons: the lifecycles differ (a local model that
loads once through the shared cache on a device, versus an HTTP client with an API key, retries and
no device), and the arguments differ. DALL·E honours only a prompt and a size, so this tool's args
schema is :class:`~polymodal.tools.builtin.image_generator.ImagePromptArgs`: the planner is never offered
seeds, steps or an input image it would silently ignore (``extra="forbid"`` rejects them at plan
validation). Both tools are named ``image_generator`` and return the same artifact, so a plan that
uses only the prompt and size runs on either; register the one you want.

``DallEAPIWrapper`` resolves the key (``api_key=`` or ``OPENAI_API_KEY``), base URL, timeout and
retries and builds the ``openai`` images client; its ``run()`` only returns URLs joined by newlines,
so the tool calls that client itself to ask for ``b64_json`` and decode the image. The API key never
appears in an error message (RELIABILITY T7).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, PrivateAttr, SecretStr

from polymodal.errors import AttachmentError, ConfigurationError, MissingDependencyError, ToolError
from polymodal.media import DEFAULT_LIMITS, Attachment, Modality
from polymodal.redaction import MASK, redact
from polymodal.runtime.budget import GenerationBudget, run_within_budget
from polymodal.tools.base import Tool, ToolOutput, current_context
from polymodal.tools.builtin.image_generator import ImagePromptArgs

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

# Sizes each model accepts; a requested width x height snaps to the nearest of these.
SIZES: dict[str, tuple[str, ...]] = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt-image-1": ("1024x1024", "1536x1024", "1024x1536"),
}


def redact_secrets(text: str, *secrets: str | None) -> str:
    """``text`` with the given secrets removed verbatim (whatever their shape), then anything key-like."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return redact(text)


def nearest_size(sizes: tuple[str, ...], width: int | None, height: int | None, default: str) -> str:
    """The allowed size closest in aspect ratio (then area) to the one asked for."""
    if width is None and height is None:
        return default
    w, h = width or height or 1024, height or width or 1024

    def distance(size: str) -> tuple[float, float]:
        sw, sh = (int(v) for v in size.split("x"))
        return abs(sw / sh - w / h), abs(sw * sh - w * h)

    return min(sizes, key=distance)


class DallEImageGenerator(Tool):
    """Generates an image from a text prompt with OpenAI's DALL·E (a hosted API; needs an API key)."""

    name: str = "image_generator"
    description: str = (
        "Generate a new image from a text description (text-to-image). Use it for 'draw', 'paint', "
        "'make a picture of', 'create a poster'. Returns the new image as an attachment."
    )
    args_schema: type[BaseModel] = ImagePromptArgs
    model: str = "dall-e-3"
    api_key: SecretStr | None = None
    """Default: the OPENAI_API_KEY environment variable."""
    base_url: str | None = None
    """Default: OPENAI_API_BASE, else OpenAI's own endpoint."""
    size: str = "1024x1024"
    """Used when the request gives no width/height."""
    quality: str | None = None
    image_format: Literal["b64_json", "url"] | None = "b64_json"
    """How the API returns the image; None sends nothing (gpt-image-1 always answers b64_json)."""
    request_timeout: float = 120.0
    max_retries: int = Field(default=2, ge=0)
    """Retries (with backoff, by the openai client) on connection errors, 429 and 5xx only."""
    max_images: int | None = 32
    """Most images this tool instance may generate (RELIABILITY R3); None: no cap."""

    output_modality: ClassVar[Modality] = Modality.IMAGE
    direct_answer: ClassVar[bool] = True

    _budget: GenerationBudget | None = PrivateAttr(default=None)
    _wrapper: Any = PrivateAttr(default=None)

    @property
    def budget(self) -> GenerationBudget:
        """Images generated so far against ``max_images``."""
        if self._budget is None:
            self._budget = GenerationBudget(self.max_images)
        return self._budget

    def execute_batch(self, inputs: Any) -> list[ToolOutput]:
        client = self._client()  # a missing extra or key fails before any budget is spent
        return run_within_budget(self.name, self.budget, list(inputs),
                                 lambda items: [self._generate(client, item) for item in items])

    def _secret(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return os.environ.get("OPENAI_API_KEY") or None

    def _client(self) -> Any:
        if self._wrapper is not None:
            return self._wrapper.client
        try:
            import openai  # noqa: F401 - DallEAPIWrapper needs it; fail with our hint, not theirs
            from langchain_community.utilities.dalle_image_generator import DallEAPIWrapper
        except ImportError as exc:
            package = "openai" if getattr(exc, "name", "") == "openai" else "langchain-community"
            raise MissingDependencyError("image_generator (DALL·E)", package, "dalle") from exc
        key = self._secret()
        if not key:
            msg = "image_generator (DALL·E): no API key; set OPENAI_API_KEY or pass api_key="
            raise ConfigurationError(msg)
        self._wrapper = DallEAPIWrapper(
            model=self.model, api_key=SecretStr(key), base_url=self.base_url, timeout=self.request_timeout,
            max_retries=self.max_retries, size=self.size, quality=self.quality,
        )
        return self._wrapper.client

    def _generate(self, client: Any, item: dict[str, Any]) -> ToolOutput:
        import openai

        size = nearest_size(SIZES.get(self.model, (self.size,)), item.get("width"), item.get("height"), self.size)
        kwargs: dict[str, Any] = {"model": self.model, "prompt": item["prompt"], "n": 1, "size": size}
        if self.quality is not None:
            kwargs["quality"] = self.quality
        if self.image_format is not None:
            kwargs["response_format"] = self.image_format
        try:
            response = client.generate(**kwargs)
        except openai.OpenAIError as exc:
            status = getattr(exc, "status_code", None)
            what = f"HTTP {status}" if status else type(exc).__name__
            msg = redact_secrets(f"{self.model} request failed ({what}): {exc}", self._secret())
            raise ToolError(self.name, msg) from None  # the chained exception may carry the key
        if not response.data:
            raise ToolError(self.name, f"{self.model} returned no image")
        image = self._image(response.data[0])
        revised = getattr(response.data[0], "revised_prompt", None)
        content = f"Generated an image ({image.width}x{image.height}, {self.model}) for the prompt: {item['prompt']}"
        if revised:
            content += f" (the service rewrote it as: {revised})"
        return ToolOutput(content=content, artifact=image)

    def _image(self, datum: Any) -> Attachment:
        try:
            if getattr(datum, "b64_json", None):
                data = base64.b64decode(datum.b64_json, validate=True)
            elif getattr(datum, "url", None):
                data = self._download(datum.url)
            else:
                raise ToolError(self.name, f"{self.model} answered with neither b64_json nor url")
            return Attachment.from_bytes(data, "generated.png", _limits())
        except (binascii.Error, AttachmentError) as exc:
            raise ToolError(self.name, f"{self.model} returned an unreadable image ({exc})") from exc

    def _download(self, url: str) -> bytes:
        """Fetch the image URL the API answered with: https, or the API's own host; size capped."""
        import httpx

        target, api = urlsplit(url), urlsplit(self.base_url or "https://api.openai.com/v1")
        if target.scheme != "https" and (target.scheme, target.netloc) != (api.scheme, api.netloc):
            raise ToolError(self.name, f"{self.model} answered with a non-https image URL; refused")
        cap = _limits().max_bytes
        try:
            with httpx.stream("GET", url, timeout=self.request_timeout, follow_redirects=False) as response:
                response.raise_for_status()
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise ToolError(self.name, f"the generated image is over the {cap:,} byte cap")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            msg = redact_secrets(f"cannot fetch the generated image ({type(exc).__name__})", self._secret())
            raise ToolError(self.name, msg) from None
        return b"".join(chunks)


def _limits() -> Any:
    ctx = current_context()
    return ctx.limits if ctx is not None else DEFAULT_LIMITS
