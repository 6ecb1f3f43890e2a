"""CLIP matcher: image(s) + candidate labels or texts -> similarity scores.

One tool covers both uses of a CLIP-family checkpoint: zero-shot classification (which label fits
each image: softmax over the labels) and image-text retrieval (which image fits each text: softmax
over the images). Image and text embeddings are computed once per batch (every image and every
distinct text of every input go through the model together) and the scores are plain dot
products of the normalised embeddings scaled by the model's ``logit_scale``, exactly what
``CLIPModel.forward`` computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from polymodal.runtime.loading import load_checked
from polymodal.tools.base import ImageRefs, ModelTool, ToolOutput

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
MAX_LABELS = 64
MAX_IMAGES = 32


class ClipMatcherArgs(BaseModel):
    """Arguments of clip_matcher."""

    model_config = ConfigDict(extra="forbid")

    images: ImageRefs = Field(min_length=1, max_length=MAX_IMAGES)
    labels: list[str] = Field(
        min_length=1, max_length=MAX_LABELS,
        description="candidate labels (zero-shot classification) or texts to match (retrieval)",
    )
    template: str = Field(
        default="a photo of {}.",
        description="how a label becomes a sentence; '{}' is the label. Use '{}' for full sentences",
    )

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        if any(not label.strip() for label in labels):
            raise ValueError("labels must not be empty strings")
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be distinct")
        return labels

    @field_validator("template")
    @classmethod
    def _placeholder(cls, template: str) -> str:
        if template.count("{}") != 1:
            raise ValueError("template must contain '{}' exactly once")
        return template


class LabelScore(BaseModel):
    """One label's score for one image."""

    label: str
    probability: float
    """Softmax over the labels, for this image (sums to 1 over the labels)."""
    similarity: float
    """Cosine similarity of the image and the label's sentence, in [-1, 1]."""


class ClipScores(BaseModel):
    """The artifact of clip_matcher: every image against every label, both directions.

    ``probabilities[i][j]`` is P(label j | image i) (rows sum to 1: classification);
    ``image_probabilities[j][i]`` is P(image i | label j) (rows sum to 1: retrieval).
    """

    images: list[str]
    """The images' ids (or names, outside a request), in argument order."""
    labels: list[str]
    similarity: list[list[float]]
    probabilities: list[list[float]]
    image_probabilities: list[list[float]]

    def ranked(self, image: int = 0) -> list[LabelScore]:
        """Labels for one image, best first."""
        scores = [LabelScore(label=label, probability=p, similarity=s) for label, p, s in
                  zip(self.labels, self.probabilities[image], self.similarity[image], strict=True)]
        return sorted(scores, key=lambda s: -s.probability)

    def best_label(self, image: int = 0) -> str:
        """The most likely label for one image."""
        return self.ranked(image)[0].label

    def rank_images(self, label: str) -> list[str]:
        """Images best first for one label or text (retrieval)."""
        row = self.image_probabilities[self.labels.index(label)]
        order = sorted(range(len(self.images)), key=lambda i: -row[i])
        return [self.images[i] for i in order]


@dataclass
class _Bundle:
    model: Any
    processor: Any
    device: str
    dtype: Any


@dataclass
class _Prepared:
    images: list[Any]
    names: list[str]
    sentences: list[str]
    labels: list[str]


class ClipMatcher(ModelTool):
    """Scores images against candidate labels or texts with a CLIP-family model."""

    checkpoint_model: ClassVar[bool] = True

    name: str = "clip_matcher"
    description: str = (
        "Score one or more images against candidate labels or descriptions you supply (zero-shot "
        "classification: 'is this a cat, a dog or a bird?'; retrieval: 'which of these photos shows a "
        "beach?'). Returns a probability per label for each image and a ranking of images per label. "
        "Use it when the answer is one of known options; for open questions use visual_qa."
    )
    args_schema: type[BaseModel] = ClipMatcherArgs
    model: str = DEFAULT_MODEL

    direct_answer: ClassVar[bool] = True

    def load(self, device: str, dtype: Any) -> _Bundle:
        from transformers import AutoModelForZeroShotImageClassification, AutoProcessor

        processor = load_checked(self.name, self.model, lambda: AutoProcessor.from_pretrained(self.model))
        model = AutoModelForZeroShotImageClassification.from_pretrained(self.model, dtype=dtype).to(device).eval()
        return _Bundle(model, processor, device, dtype)

    def prepare(self, inputs: Sequence[dict[str, Any]]) -> list[_Prepared]:
        prepared = []
        for item in inputs:
            attachments = item["images"]
            template = item.get("template") or "a photo of {}."
            labels = list(item["labels"])
            prepared.append(_Prepared(
                images=[a.image() for a in attachments],
                names=[a.id or a.name for a in attachments],
                sentences=[template.replace("{}", label) for label in labels],
                labels=labels,
            ))
        return prepared

    def encode(self, bundle: _Bundle, prepared: list[_Prepared]) -> dict[str, Any]:
        images = [image for p in prepared for image in p.images]
        sentences = list(dict.fromkeys(s for p in prepared for s in p.sentences))  # distinct, in order
        pixels = bundle.processor(images=images, return_tensors="pt")["pixel_values"]
        text = bundle.processor(text=sentences, return_tensors="pt", padding=True, truncation=True)
        return {
            "pixel_values": pixels.to(bundle.device, bundle.dtype),
            "text": {k: v.to(bundle.device) for k, v in text.items()},
            "sentences": sentences,
        }

    def forward(self, bundle: _Bundle, encoded: dict[str, Any]) -> dict[str, Any]:
        model = bundle.model
        image_embeds = _unit(model.get_image_features(pixel_values=encoded["pixel_values"]))
        text_embeds = _unit(model.get_text_features(**encoded["text"]))
        return {"image": image_embeds.float(), "text": text_embeds.float(), "sentences": encoded["sentences"],
                "scale": float(model.logit_scale.exp())}

    def decode(self, bundle: _Bundle, outputs: dict[str, Any], prepared: list[_Prepared]) -> list[ToolOutput]:
        index = {s: i for i, s in enumerate(outputs["sentences"])}
        results, start = [], 0
        for item in prepared:
            images = outputs["image"][start : start + len(item.images)]
            start += len(item.images)
            texts = outputs["text"][[index[s] for s in item.sentences]]
            similarity = images @ texts.T  # (images, labels) cosine
            logits = similarity * outputs["scale"]
            scores = ClipScores(
                images=item.names,
                labels=item.labels,
                similarity=similarity.tolist(),
                probabilities=logits.softmax(dim=1).tolist(),
                image_probabilities=logits.T.softmax(dim=1).tolist(),
            )
            results.append(ToolOutput(content=_summary(scores), artifact=scores))
        return results


def _unit(embeds: Any) -> Any:
    embeds = getattr(embeds, "pooler_output", embeds)  # some versions return a model output
    return embeds / embeds.norm(dim=-1, keepdim=True)


def _summary(scores: ClipScores) -> str:
    lines = []
    for i, name in enumerate(scores.images):
        ranked = ", ".join(f"{s.label} {s.probability:.2f}" for s in scores.ranked(i)[:5])
        lines.append(f"{name}: {ranked}" if len(scores.images) > 1 else ranked)
    if len(scores.images) > 1:
        for label in scores.labels[:5]:
            lines.append(f"best match for {label!r}: {scores.rank_images(label)[0]}")
    return "\n".join(lines)
