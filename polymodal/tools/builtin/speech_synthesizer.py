"""SpeechSynthesizer: text -> speech (a 16 kHz WAV attachment), with SpeechT5 and a HiFi-GAN vocoder.

The model classes are used directly rather than the ``text-to-speech`` pipeline, which silently
downloads ``microsoft/speecht5_hifigan`` when it is not handed a vocoder; here the vocoder is a
field (a folder or hub id) and is always loaded explicitly.

SpeechT5 reads a bounded number of tokens and speaks in the voice of a speaker embedding (an
x-vector). Long text is split into sentences (and over-long sentences at word boundaries), each
is spoken, and the pieces are joined with a short pause. Sentences of equal token length share
one ``generate`` call: SpeechT5 measures its min/max output length on the padded input, so
padding would make a sentence sound different depending on what it was batched with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from polymodal.errors import ConfigurationError, ToolError
from polymodal.media import Attachment, Modality
from polymodal.runtime.loading import load_checked
from polymodal.tools.base import ModelTool, ToolOutput

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

DEFAULT_MODEL = "microsoft/speecht5_tts"
DEFAULT_VOCODER = "microsoft/speecht5_hifigan"
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")


class SpeechSynthesizerArgs(BaseModel):
    """Arguments of the speech synthesizer."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=5000, description="the text to speak aloud")


@dataclass
class _Bundle:
    model: Any
    tokenizer: Any
    vocoder: Any
    speaker: Any  # tensor (1, dim) on the model's device and dtype
    device: str
    dtype: Any
    sample_rate: int
    max_tokens: int


def load_speaker_embedding(path: str | Path, dim: int) -> np.ndarray:
    """Read an x-vector from ``.npy`` or ``.pt``; shape (dim,) or (1, dim). Returns float32 (dim,).

    Raises:
        ConfigurationError: the file is missing, unreadable, or has the wrong shape.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        msg = f"speech_synthesizer: speaker embedding file {str(path)!r} does not exist"
        raise ConfigurationError(msg)
    try:
        if source.suffix == ".npy":
            array = np.load(source, allow_pickle=False)
        elif source.suffix == ".pt":
            import torch

            array = torch.load(source, map_location="cpu", weights_only=True).float().numpy()
        else:
            msg = f"speech_synthesizer: speaker embedding {source.name!r} must be a .npy or .pt file"
            raise ConfigurationError(msg)
    except (OSError, ValueError, RuntimeError, AttributeError) as exc:
        msg = f"speech_synthesizer: cannot read speaker embedding {source.name!r} ({type(exc).__name__}: {exc})"
        raise ConfigurationError(msg) from exc
    array = np.asarray(array, dtype=np.float32)
    if array.shape not in ((dim,), (1, dim)):
        msg = f"speech_synthesizer: speaker embedding {source.name!r} has shape {array.shape}, expected ({dim},)"
        raise ConfigurationError(msg)
    return array.reshape(dim)


def default_speaker(dim: int) -> np.ndarray:
    """A fixed, unit-norm vector of the model's speaker size: a voice with no download.

    Real x-vectors (e.g. from the CMU ARCTIC set) sound much better; pass one as ``speaker_embedding``.
    """
    vector = np.random.default_rng(0).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


class SpeechSynthesizer(ModelTool):
    """Speaks text aloud (text-to-speech) with SpeechT5 and a HiFi-GAN vocoder."""

    checkpoint_model: ClassVar[bool] = True

    name: str = "speech_synthesizer"
    description: str = (
        "Turn text into spoken audio (text-to-speech), in English. Use it for 'read this aloud', 'say', "
        "'make a voice message', 'narrate'. Returns the speech as an audio attachment (16 kHz WAV)."
    )
    args_schema: type[BaseModel] = SpeechSynthesizerArgs
    model: str = DEFAULT_MODEL
    vocoder: str = DEFAULT_VOCODER
    """The HiFi-GAN vocoder (folder or hub id); always loaded explicitly, never fetched behind your back."""
    speaker_embedding: str | None = None
    """A .npy/.pt x-vector of the model's speaker size; None: a built-in fixed voice (no download)."""
    minlenratio: float = Field(default=0.0, ge=0.0)
    """Minimum speech length relative to the text; 1.0 keeps an untrained decoder from stopping at once."""
    maxlenratio: float = Field(default=20.0, gt=0.0)
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    """Stop probability at which a sentence ends."""
    pause_seconds: float = Field(default=0.2, ge=0.0)
    """Silence between sentences."""
    peak: float | None = Field(default=0.9, gt=0.0, le=1.0)
    """Scale each output so its loudest sample is at this level (the vocoder's level varies with the
    speaker embedding; a fixed peak gives every message the same volume). None: keep the raw level."""
    batch_size: int = 8

    output_modality: ClassVar[Modality] = Modality.AUDIO
    direct_answer: ClassVar[bool] = True

    def cache_key(self) -> str:
        return f"{super().cache_key()}:{self.vocoder}:{self.speaker_embedding}"

    def load(self, device: str, dtype: Any) -> _Bundle:
        import torch
        from transformers import AutoModelForTextToSpectrogram, AutoProcessor, SpeechT5HifiGan

        processor = load_checked(self.name, self.model, lambda: AutoProcessor.from_pretrained(self.model))
        model = AutoModelForTextToSpectrogram.from_pretrained(self.model, dtype=dtype).to(device).eval()
        vocoder: Any = load_checked(f"{self.name} vocoder", self.vocoder,
                               lambda: SpeechT5HifiGan.from_pretrained(self.vocoder, dtype=dtype))
        vocoder = vocoder.to(device).eval()
        dim = int(model.config.speaker_embedding_dim)
        vector = load_speaker_embedding(self.speaker_embedding, dim) if self.speaker_embedding else default_speaker(dim)
        speaker = torch.from_numpy(vector).reshape(1, dim).to(device=device, dtype=dtype)
        tokenizer = getattr(processor, "tokenizer", processor)
        max_tokens = int(getattr(model.config, "max_text_positions", 600)) - 1  # room for </s>
        rate = int(getattr(vocoder.config, "sampling_rate", 16000))
        return _Bundle(model, tokenizer, vocoder, speaker, device, dtype, rate, max_tokens)

    def prepare(self, inputs: Any) -> list[list[str]]:
        prepared = []
        for item in inputs:
            sentences = [s.strip() for s in _SENTENCE_END.split(item["text"]) if s and s.strip()]
            if not sentences:
                raise ToolError(self.name, "the text to speak is empty (only whitespace)")
            prepared.append(sentences)
        return prepared

    def encode(self, bundle: _Bundle, prepared: list[list[str]]) -> dict[int, list[tuple[int, int, list[int]]]]:
        """Tokenize every piece; bucket pieces by token length as (input, piece, ids)."""
        buckets: dict[int, list[tuple[int, int, list[int]]]] = {}
        for i, sentences in enumerate(prepared):
            pieces = [ids for sentence in sentences for ids in _pieces(bundle.tokenizer, sentence, bundle.max_tokens)]
            for j, ids in enumerate(pieces):
                buckets.setdefault(len(ids), []).append((i, j, ids))
        return buckets

    def forward(self, bundle: _Bundle, encoded: dict[int, list[tuple[int, int, list[int]]]]) -> dict[int, Any]:
        import torch

        spoken: dict[int, dict[int, np.ndarray]] = {}
        for items in encoded.values():
            for start in range(0, len(items), max(1, self.batch_size)):
                chunk = items[start : start + max(1, self.batch_size)]
                ids = torch.tensor([ids for _, _, ids in chunk], device=bundle.device)
                spectrograms, lengths = bundle.model.generate(
                    ids, speaker_embeddings=bundle.speaker.expand(len(chunk), -1), threshold=self.threshold,
                    minlenratio=self.minlenratio, maxlenratio=self.maxlenratio, return_output_lengths=True,
                )
                for (i, j, _), spectrogram, length in zip(chunk, spectrograms, lengths, strict=True):
                    # Vocode each piece alone: padding frames would bleed into the end of the waveform.
                    wave = bundle.vocoder(spectrogram[:length].unsqueeze(0)).reshape(-1)
                    spoken.setdefault(i, {})[j] = wave.float().cpu().numpy()
        return spoken

    def decode(self, bundle: _Bundle, outputs: dict[int, Any], prepared: list[list[str]]) -> list[ToolOutput]:
        results = []
        pause = np.zeros(int(self.pause_seconds * bundle.sample_rate), dtype=np.float32)
        for i, sentences in enumerate(prepared):
            pieces = [outputs[i][j] for j in sorted(outputs.get(i, {}))]
            joined: list[np.ndarray] = []
            for k, piece in enumerate(pieces):
                joined.extend([pause, piece] if k else [piece])
            samples = np.concatenate(joined) if joined else np.zeros(0, dtype=np.float32)
            loudest = float(np.abs(samples).max()) if samples.size else 0.0
            if self.peak is not None and loudest > 0.0:
                samples = samples * (self.peak / loudest)
            audio = Attachment.from_audio(samples, bundle.sample_rate, "speech.wav")
            text = " ".join(sentences)
            content = f"Spoke {len(samples) / bundle.sample_rate:.1f} s of speech for the text: {text[:200]}"
            results.append(ToolOutput(content=content, artifact=audio))
        return results


def _pieces(tokenizer: Any, sentence: str, max_tokens: int) -> list[list[int]]:
    """Token ids of ``sentence``, split at word boundaries (or inside a word, if need be) to fit."""
    ids = tokenizer(sentence)["input_ids"]
    if len(ids) <= max_tokens:
        return [ids]
    words = sentence.split()
    if len(words) == 1:  # one giant "word": split it in half by characters
        half = len(sentence) // 2
        return _pieces(tokenizer, sentence[:half], max_tokens) + _pieces(tokenizer, sentence[half:], max_tokens)
    half = len(words) // 2
    first, second = " ".join(words[:half]), " ".join(words[half:])
    return _pieces(tokenizer, first, max_tokens) + _pieces(tokenizer, second, max_tokens)
