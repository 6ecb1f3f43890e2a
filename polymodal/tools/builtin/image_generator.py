"""ImageGenerator: text (+ an optional image) -> a generated image, with Stable Diffusion via diffusers.

``DiffusionPipeline.from_pretrained`` reads the checkpoint's ``model_index.json`` and builds the
right pipeline class (SD 1.x/2.x, SDXL, ...), so any Stable Diffusion family folder or hub id
works. Image-to-image reuses the loaded weights through ``AutoPipelineForImage2Image.from_pipe``
instead of loading a second copy.

Every image gets its own ``torch.Generator`` seeded from the arguments (or a fresh random seed
that the output reports), so the same seed on the same device gives the same pixels, whether
the image was generated alone or in a batch. The generated image comes back as an
:class:`~polymodal.media.Attachment` artifact; the executor gives it an id (``image_2``) that a
later step, or the next chat turn, can use.

diffusers is the optional ``diffusion`` extra: ``import polymodal`` works without it, and using
the tool says which extra to install (RELIABILITY T5).
"""

from __future__ import annotations

import importlib.util
import random
import sys
import threading
import warnings
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from polymodal.errors import MissingDependencyError, ToolError
from polymodal.media import Attachment, Modality
from polymodal.runtime.budget import GenerationBudget, run_within_budget
from polymodal.runtime.loading import load_checked
from polymodal.tools.base import ImageRef, ModelTool, ToolOutput, current_context

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
MAX_SEED = 2**32 - 1


class ImagePromptArgs(BaseModel):
    """What every image generator takes (the DALL·E backend takes exactly this)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=2000, description="what the image should show")
    width: int | None = Field(default=None, ge=32, le=2048, multiple_of=8, description="pixels; default: the model's")
    height: int | None = Field(default=None, ge=32, le=2048, multiple_of=8, description="pixels; default: the model's")


class ImageGeneratorArgs(ImagePromptArgs):
    """Arguments of the diffusers image generator."""

    negative_prompt: str | None = Field(default=None, max_length=2000, description="what the image must not show")
    steps: int | None = Field(default=None, ge=1, le=150, description="denoising steps; more is slower and finer")
    guidance: float | None = Field(default=None, ge=0.0, le=30.0, description="how closely to follow the prompt")
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="same seed, same image; default: random")
    # The modality is repeated on the field: inside ``X | None`` the ImageRef marker is not on the field itself.
    image: ImageRef | None = Field(default=None, description="id of an image to transform (image-to-image)",
                                   json_schema_extra={"modality": Modality.IMAGE.value})
    strength: float = Field(default=0.75, gt=0.0, le=1.0, description="image-to-image: how much to change it")


@dataclass
class _Bundle:
    pipe: Any
    device: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    """One generation at a time per pipeline: its scheduler keeps per-call state."""
    img2img: Any = None


@dataclass
class _Job:
    """One image to generate, with everything resolved except the model."""

    prompt: str
    negative: str
    seed: int
    steps: int
    guidance: float
    width: int | None
    height: int | None
    init_image: Any  # PIL image or None
    strength: float

    def group(self) -> tuple[Any, ...]:
        """Jobs with equal call-wide settings share one pipeline call."""
        return (self.init_image is not None, self.steps, self.guidance, self.width, self.height, self.strength)


def _require_diffusers() -> None:
    """Fail when the extra is missing, without paying diffusers' import (~5 s) before the model is checked."""
    installed = sys.modules["diffusers"] is not None if "diffusers" in sys.modules else (
        importlib.util.find_spec("diffusers") is not None)
    if not installed:
        raise MissingDependencyError("image_generator", "diffusers", "diffusion")


def _diffusers() -> Any:
    try:
        import diffusers
    except ImportError as exc:
        raise MissingDependencyError("image_generator", "diffusers", "diffusion") from exc
    return diffusers


class ImageGenerator(ModelTool):
    """Generates an image from a text prompt, or transforms an attached image, with Stable Diffusion."""

    checkpoint_model: ClassVar[bool] = True

    name: str = "image_generator"
    description: str = (
        "Generate a new image from a text description (text-to-image), or redraw an existing image "
        "following a description (pass its id as `image`). Use it for 'draw', 'paint', 'make a picture "
        "of', 'create a poster'. Returns the new image as an attachment. Not for describing images."
    )
    args_schema: type[BaseModel] = ImageGeneratorArgs
    model: str = DEFAULT_MODEL
    batch_size: int = 4
    default_steps: int = 30
    default_guidance: float = 7.5
    max_images: int | None = 32
    """Most images this tool instance may generate (RELIABILITY R3); None: no cap."""
    variant: str | None = None
    """Weights variant to load, e.g. "fp16" for checkpoints that ship half-precision files."""
    safety_checker: bool = True
    """Keep the checkpoint's safety checker when it has one; False loads without it."""

    output_modality: ClassVar[Modality] = Modality.IMAGE
    direct_answer: ClassVar[bool] = True

    _budget: GenerationBudget | None = PrivateAttr(default=None)

    @property
    def budget(self) -> GenerationBudget:
        """Images generated so far against ``max_images``."""
        if self._budget is None:
            self._budget = GenerationBudget(self.max_images)
        return self._budget

    def cache_key(self) -> str:
        return f"{super().cache_key()}:{self.variant}:{self.safety_checker}"

    def execute_batch(self, inputs: Any) -> list[ToolOutput]:
        _require_diffusers()  # a missing extra fails before any budget is spent or file decoded
        return run_within_budget(self.name, self.budget, list(inputs), super().execute_batch)

    def load(self, device: str, dtype: Any) -> _Bundle:
        pipeline_class = _diffusers().DiffusionPipeline
        kwargs: dict[str, Any] = {"torch_dtype": dtype}
        if self.variant:
            kwargs["variant"] = self.variant
        if not self.safety_checker:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        with warnings.catch_warnings():
            # diffusers >= 0.36 renamed torch_dtype to dtype; the old name works everywhere we support.
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            pipe = load_checked(self.name, self.model, lambda: pipeline_class.from_pretrained(self.model, **kwargs))
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        return _Bundle(pipe, device)

    def prepare(self, inputs: Any) -> list[_Job]:
        jobs = []
        for item in inputs:
            source = item.get("image")
            init = source.image() if source is not None else None  # decoded before the model loads
            width, height = item.get("width"), item.get("height")
            if init is not None:
                width, height = _fit(init.size, width, height)
                init = init.resize((width, height)) if init.size != (width, height) else init
            seed = item.get("seed")
            jobs.append(_Job(
                prompt=item["prompt"], negative=item.get("negative_prompt") or "",
                seed=random.randint(0, MAX_SEED) if seed is None else int(seed),
                steps=item.get("steps") or self.default_steps,
                guidance=self.default_guidance if item.get("guidance") is None else float(item["guidance"]),
                width=width, height=height, init_image=init, strength=float(item.get("strength", 0.75)),
            ))
        return jobs

    def batch_group(self, prepared: _Job) -> Hashable:
        """Only jobs with the same steps, guidance, size and mode share a coalesced call."""
        return prepared.group()

    def encode(self, bundle: _Bundle, prepared: list[_Job]) -> list[list[_Job]]:
        groups: dict[tuple[Any, ...], list[_Job]] = {}
        for job in prepared:
            groups.setdefault(job.group(), []).append(job)
        return list(groups.values())

    def forward(self, bundle: _Bundle, encoded: list[list[_Job]]) -> dict[int, tuple[Any, bool]]:
        results: dict[int, tuple[Any, bool]] = {}
        with bundle.lock:
            for jobs in encoded:
                images, flagged = self._generate(bundle, jobs)
                for job, image, bad in zip(jobs, images, flagged, strict=True):
                    results[id(job)] = (image, bad)  # jobs of several callers may share a batch
        return results

    def _generate(self, bundle: _Bundle, jobs: list[_Job]) -> tuple[list[Any], list[bool]]:
        import torch

        first = jobs[0]
        # One generator per image: its noise does not depend on what else is in the batch.
        gen_device = "cpu" if bundle.device.startswith("mps") else bundle.device
        generators = [torch.Generator(gen_device).manual_seed(job.seed) for job in jobs]
        kwargs: dict[str, Any] = {
            "prompt": [job.prompt for job in jobs],
            "negative_prompt": [job.negative for job in jobs],
            "num_inference_steps": first.steps,
            "guidance_scale": first.guidance,
            "generator": generators,
            "output_type": "pil",
        }
        progress = _progress_callback()
        if progress is not None:
            kwargs["callback_on_step_end"] = progress
        if first.init_image is not None:
            pipe = self._img2img(bundle)
            kwargs.update(image=[job.init_image for job in jobs], strength=first.strength)
        else:
            pipe = bundle.pipe
            kwargs.update(width=first.width, height=first.height)
        try:
            out = pipe(**kwargs)
        except (ValueError, TypeError) as exc:  # e.g. a size the model's VAE cannot divide
            raise ToolError(self.name, f"{self.model}: {exc}") from exc
        flagged = getattr(out, "nsfw_content_detected", None) or [False] * len(jobs)
        return list(out.images), [bool(f) for f in flagged]

    def _img2img(self, bundle: _Bundle) -> Any:
        if bundle.img2img is None:
            try:
                bundle.img2img = _diffusers().AutoPipelineForImage2Image.from_pipe(bundle.pipe)
            except ValueError as exc:
                msg = f"{self.model}: this pipeline has no image-to-image variant ({exc})"
                raise ToolError(self.name, msg) from exc
            bundle.img2img.set_progress_bar_config(disable=True)
        return bundle.img2img

    def decode(self, bundle: _Bundle, outputs: dict[int, tuple[Any, bool]], prepared: list[_Job]) -> list[ToolOutput]:
        results = []
        for job in prepared:
            image, flagged = outputs[id(job)]
            if flagged:
                msg = f"the safety checker blocked the image for prompt {job.prompt[:80]!r}"
                raise ToolError(self.name, msg)
            kind = "Redrew the image" if job.init_image is not None else "Generated an image"
            content = (f"{kind} ({image.width}x{image.height}, seed {job.seed}, {job.steps} steps) "
                       f"for the prompt: {job.prompt}")
            results.append(ToolOutput(content=content, artifact=Attachment.from_image(image, "generated.png")))
        return results


def _fit(size: tuple[int, int], width: int | None, height: int | None) -> tuple[int, int]:
    """The size to redraw at: the one asked for, else the source's, rounded down to a multiple of 8."""
    w = width or max(8, size[0] // 8 * 8)
    h = height or max(8, size[1] // 8 * 8)
    return w, h


def _progress_callback() -> Any:
    """A diffusers ``callback_on_step_end`` reporting each step to the step's progress hook, if any."""
    ctx = current_context()
    if ctx is None or ctx.progress is None:
        return None
    report = ctx.progress

    def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        total = max(1, int(getattr(pipe, "num_timesteps", 0) or 1))
        report(f"denoising step {step + 1}/{total}", min(1.0, (step + 1) / total))
        return callback_kwargs

    return on_step_end
