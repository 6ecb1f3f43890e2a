"""Visual question answering: image + question(s) -> short answer(s), for three model families.

transformers 5 removed the ``visual-question-answering`` pipeline, and loading a BLIP VQA folder
through ``image-text-to-text`` silently builds the wrong class, so the family is read from the
checkpoint's config:

- ``blip`` (Salesforce/blip-vqa-*): ``AutoModelForVisualQuestionAnswering`` + ``generate``; the
  processor takes the question as text.
- ``blip-2`` / ``instructblip``: ``AutoModelForImageTextToText`` with the prompt
  ``"Question: ... Answer:"`` these checkpoints were tuned on.
- anything else (SmolVLM, IDEFICS, LLaVA...): ``AutoModelForImageTextToText`` with the
  processor's chat template applied to one user message holding the image and the question.

Several questions about one image are one call (``questions=[...]``): every (image, question)
pair of every input in a batch goes through ``generate`` together, then the answers are regrouped
per input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from polymodal.runtime.loading import load_checked
from polymodal.tools.base import ImageRef, ModelTool, ToolOutput

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

DEFAULT_MODEL = "Salesforce/blip-vqa-base"
_PROMPTED = ("blip-2", "instructblip")  # families tuned on "Question: ... Answer:"
MAX_QUESTIONS = 16


class VisualQAArgs(BaseModel):
    """Arguments of visual_qa: one ``question``, or several ``questions`` about the same image."""

    model_config = ConfigDict(extra="forbid")

    image: ImageRef
    question: str | None = Field(default=None, min_length=1, description="one question about the image")
    questions: list[str] | None = Field(
        default=None, min_length=1, max_length=MAX_QUESTIONS,
        description="several questions about the same image, answered in one batched call",
    )

    @model_validator(mode="after")
    def _one_way(self) -> VisualQAArgs:
        if (self.question is None) == (self.questions is None):
            msg = "give exactly one of 'question' (a string) or 'questions' (a list of strings)"
            raise ValueError(msg)
        if self.questions is not None and any(not q.strip() for q in self.questions):
            raise ValueError("questions must not be empty strings")
        return self


class QAPair(BaseModel):
    """One question and the model's answer to it."""

    question: str
    answer: str


class VisualAnswers(BaseModel):
    """The artifact of visual_qa: the answers, in the order the questions were asked."""

    pairs: list[QAPair]

    @property
    def answers(self) -> list[str]:
        """Just the answers, in question order."""
        return [p.answer for p in self.pairs]


@dataclass
class _Bundle:
    model: Any
    processor: Any
    family: str  # "blip", "prompted" or "chat"
    device: str
    dtype: Any


@dataclass
class _Pair:
    image: Any
    question: str


class VisualQA(ModelTool):
    """Answers questions about an image (BLIP VQA, BLIP-2, or a chat VLM such as SmolVLM)."""

    checkpoint_model: ClassVar[bool] = True

    name: str = "visual_qa"
    description: str = (
        "Answer a specific question about an image: colours, counts, what someone is doing, whether "
        "something is present ('what colour is the car?', 'how many people?'). Pass 'question', or "
        "'questions' (a list) to ask several things about the same image at once. For a general "
        "description use captioner; to read written text use ocr."
    )
    args_schema: type[BaseModel] = VisualQAArgs
    model: str = DEFAULT_MODEL
    max_new_tokens: int = 20
    generate_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra ``generate`` arguments (e.g. ``min_new_tokens``, ``suppress_tokens``)."""

    direct_answer: ClassVar[bool] = True

    def load(self, device: str, dtype: Any) -> _Bundle:
        from transformers import AutoConfig, AutoProcessor

        config = load_checked(self.name, self.model, lambda: AutoConfig.from_pretrained(self.model))
        processor = AutoProcessor.from_pretrained(self.model)
        auto_class: Any
        if config.model_type == "blip":
            from transformers import AutoModelForVisualQuestionAnswering

            auto_class, family = AutoModelForVisualQuestionAnswering, "blip"
        else:
            from transformers import AutoModelForImageTextToText

            auto_class = AutoModelForImageTextToText
            family = "prompted" if config.model_type in _PROMPTED else "chat"
        model = auto_class.from_pretrained(self.model, dtype=dtype).to(device).eval()
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is not None and family != "blip":
            tokenizer.padding_side = "left"  # decoder-only LMs continue from the right end of the prompt
        return _Bundle(model, processor, family, device, dtype)

    def execute_batch(self, inputs: Sequence[dict[str, Any]]) -> list[ToolOutput]:
        # The base runs one flat batch of (image, question) pairs; regroup the answers per input.
        flat = super().execute_batch(inputs)
        results, start = [], 0
        for item in inputs:
            questions = _questions(item)
            pairs = [QAPair(question=q, answer=o.artifact) for q, o in zip(questions, flat[start:], strict=False)]
            start += len(questions)
            if item.get("questions") is None:
                results.append(ToolOutput(content=pairs[0].answer, artifact=VisualAnswers(pairs=pairs)))
            else:
                content = "\n".join(f"Q: {p.question}\nA: {p.answer}" for p in pairs)
                results.append(ToolOutput(content=content, artifact=VisualAnswers(pairs=pairs)))
        return results

    def prepare(self, inputs: Sequence[dict[str, Any]]) -> list[_Pair]:
        return [_Pair(item["image"].image(), q) for item in inputs for q in _questions(item)]

    def encode(self, bundle: _Bundle, prepared: list[_Pair]) -> dict[str, Any]:
        images = [p.image for p in prepared]
        if bundle.family == "blip":
            texts = [p.question for p in prepared]
        elif bundle.family == "prompted":
            texts = [f"Question: {p.question} Answer:" for p in prepared]
        else:
            texts = [_chat_prompt(bundle.processor, p.question) for p in prepared]
            images = [[image] for image in images]  # chat processors take a list of images per prompt
        encoded = dict(bundle.processor(images=images, text=texts, return_tensors="pt", padding=True))
        return {k: _to(v, bundle) for k, v in encoded.items()}

    def forward(self, bundle: _Bundle, encoded: dict[str, Any]) -> Any:
        kwargs = {"max_new_tokens": self.max_new_tokens, **self.generate_kwargs}
        return bundle.model.generate(**encoded, **kwargs), encoded.get("input_ids")

    def decode(self, bundle: _Bundle, outputs: Any, prepared: list[_Pair]) -> list[ToolOutput]:
        generated, input_ids = outputs
        # Decoder-only LMs return prompt + answer; keep only the answer.
        if input_ids is not None and generated.shape[1] >= input_ids.shape[1]:
            head = generated[:, : input_ids.shape[1]]
            if head.shape == input_ids.shape and bool((head == input_ids).all()):
                generated = generated[:, input_ids.shape[1]:]
        texts = bundle.processor.batch_decode(generated, skip_special_tokens=True)
        return [ToolOutput(content=_clean(t), artifact=_clean(t)) for t in texts]


def _questions(item: dict[str, Any]) -> list[str]:
    questions = item.get("questions")
    return list(questions) if questions is not None else [str(item["question"])]


def _chat_prompt(processor: Any, question: str) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    if getattr(processor, "chat_template", None):
        return str(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    return question  # processors without a template (PaliGemma style) take the bare question


def _clean(text: str) -> str:
    return " ".join(text.split())


def _to(value: Any, bundle: _Bundle) -> Any:
    """Move a tensor to the model's device; pixels also to its dtype (fp16 on a GPU)."""
    if not hasattr(value, "to"):
        return value
    value = value.to(bundle.device)
    return value.to(bundle.dtype) if value.is_floating_point() else value
