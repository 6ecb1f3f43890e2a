"""Captioner: image -> text, with any image-to-text checkpoint (BLIP, BLIP-2, ViT-GPT2, GIT...).

transformers 5 has no captioning pipeline that picks the right class for every family (the
``image-to-text`` task became ``image-text-to-text`` and needs a text prompt), so the model class
is chosen from the checkpoint's config: a ViT+GPT2-style ``vision-encoder-decoder`` loads with
its image processor and tokenizer, everything else through ``AutoModelForImageTextToText`` and
``AutoProcessor``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from polymodal.runtime.loading import load_checked
from polymodal.tools.base import ImageRef, ModelTool, ToolOutput

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

DEFAULT_MODEL = "Salesforce/blip-image-captioning-base"
# Families whose language model needs a text input even for an unprompted caption.
_NEEDS_TEXT = ("blip-2", "instructblip")


class CaptionerArgs(BaseModel):
    """Arguments of the captioner."""

    model_config = ConfigDict(extra="forbid")

    image: ImageRef
    prompt: str = Field(default="", description="optional start of the caption, e.g. 'a photo of'")


@dataclass
class _Bundle:
    model: Any
    processor: Any  # a combined processor, or None for vision-encoder-decoder checkpoints
    image_processor: Any
    tokenizer: Any
    device: str
    dtype: Any
    needs_text: bool


class Captioner(ModelTool):
    """Describes an image in one sentence."""

    checkpoint_model: ClassVar[bool] = True

    name: str = "captioner"
    description: str = (
        "Describe what an image shows in one sentence (image captioning). Use it for 'what is in this "
        "photo', 'describe this picture'. Not for questions about details: use visual_qa for those."
    )
    args_schema: type[BaseModel] = CaptionerArgs
    model: str = DEFAULT_MODEL
    max_new_tokens: int = 40

    direct_answer: ClassVar[bool] = True

    def load(self, device: str, dtype: Any) -> _Bundle:
        from transformers import AutoConfig

        config = load_checked(self.name, self.model, lambda: AutoConfig.from_pretrained(self.model))
        if config.model_type == "vision-encoder-decoder":
            return self._load_encoder_decoder(device, dtype)
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = load_checked(self.name, self.model, lambda: AutoProcessor.from_pretrained(self.model))
        model: Any = AutoModelForImageTextToText.from_pretrained(self.model, dtype=dtype)
        model = model.to(device).eval()
        tokenizer = processor.tokenizer
        if not model.config.is_encoder_decoder:
            tokenizer.padding_side = "left"  # decoder-only LMs continue from the right end of the prompt
        needs_text = any(family in config.model_type for family in _NEEDS_TEXT)
        return _Bundle(model, processor, processor.image_processor, tokenizer, device, dtype, needs_text)

    def _load_encoder_decoder(self, device: str, dtype: Any) -> _Bundle:
        from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

        image_processor = AutoImageProcessor.from_pretrained(self.model)
        tokenizer = AutoTokenizer.from_pretrained(self.model)
        model: Any = VisionEncoderDecoderModel.from_pretrained(self.model, dtype=dtype)
        model = model.to(device).eval()
        return _Bundle(model, None, image_processor, tokenizer, device, dtype, needs_text=False)

    def prepare(self, inputs: Any) -> list[Any]:
        return [(item["image"].image(), item.get("prompt") or "") for item in inputs]

    def batch_group(self, prepared: Any) -> Hashable:
        """Captions with different prompts never share a forward (padding would shift the prompts)."""
        return prepared[1]

    def encode(self, bundle: _Bundle, prepared: list[Any]) -> Any:
        images = [image for image, _ in prepared]
        prompts = [prompt for _, prompt in prepared]
        if bundle.processor is None:
            encoded = {"pixel_values": bundle.image_processor(images=images, return_tensors="pt").pixel_values}
        elif any(prompts) or bundle.needs_text:
            encoded = dict(bundle.processor(images=images, text=prompts, return_tensors="pt", padding=True))
        else:
            encoded = dict(bundle.processor(images=images, return_tensors="pt"))
        return {k: _to(v, bundle) for k, v in encoded.items()}

    def forward(self, bundle: _Bundle, encoded: Any) -> Any:
        return bundle.model.generate(**encoded, max_new_tokens=self.max_new_tokens)

    def decode(self, bundle: _Bundle, outputs: Any, prepared: list[Any]) -> list[ToolOutput]:
        texts = bundle.tokenizer.batch_decode(outputs, skip_special_tokens=True)
        return [ToolOutput(content=" ".join(t.split()), artifact=" ".join(t.split())) for t in texts]


def _to(value: Any, bundle: _Bundle) -> Any:
    """Move a tensor to the model's device; pixels also to its dtype (fp16 on a GPU)."""
    value = value.to(bundle.device)
    return value.to(bundle.dtype) if value.is_floating_point() else value
