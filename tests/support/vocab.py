"""In-memory tokenizer vocabularies for the tiny test checkpoints.

Nothing here reads a file or touches the Hugging Face Hub: transformers 5 fast tokenizers accept
a vocab dict directly, so every tokenizer used by ``tiny_models`` is built from these helpers.
"""

from __future__ import annotations

import io
import string
from functools import lru_cache

# A few sentences: extra WordPiece words, the T5 alphabet and the sentencepiece training text.
CORPUS: tuple[str, ...] = (
    "a photo of a cat sitting on a red sofa",
    "a dog runs in the park with a ball",
    "what color is the car in the picture",
    "hello world, this is a tiny test model.",
    "the quick brown fox jumps over the lazy dog",
    "how many people are in the image?",
    "speech synthesis and speech recognition offline",
    "0 1 2 3 4 5 6 7 8 9 yes no",
)


@lru_cache(maxsize=1)
def byte_level_alphabet() -> tuple[str, ...]:
    """The 256 unicode chars GPT-2 style byte-level BPE uses for raw bytes, sorted for determinism."""
    from tokenizers import pre_tokenizers

    return tuple(sorted(pre_tokenizers.ByteLevel.alphabet()))


def byte_level_vocab(specials_first: tuple[str, ...] | list[str] = (),
                     specials_last: tuple[str, ...] | list[str] = ()) -> dict[str, int]:
    """Vocab for GPT2/Qwen2/Whisper/OPT byte-level BPE with no merges: any text encodes, ~260 tokens."""
    toks = [*specials_first, *byte_level_alphabet(), *specials_last]
    return {t: i for i, t in enumerate(toks)}


def clip_vocab() -> tuple[dict[str, int], list[str]]:
    """CLIP BPE needs every byte char both bare and with the ``</w>`` end-of-word suffix; no merges."""
    alpha = byte_level_alphabet()
    toks = [*alpha, *(a + "</w>" for a in alpha), "<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(toks)}, []


def bert_vocab() -> dict[str, int]:
    """Tiny WordPiece vocab: specials, chars, ``##chars`` and the words of CORPUS (~130 tokens)."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,?!'-:;\"()")
    words = sorted({w.strip(",.?") for s in CORPUS for w in s.split()} - set(chars))
    toks = specials + chars + ["##" + c for c in chars if c.isalnum()] + words
    return {t: i for i, t in enumerate(dict.fromkeys(toks))}


def t5_unigram_vocab() -> list[tuple[str, float]]:
    """Unigram (piece, score) list for ``T5Tokenizer(vocab=...)``: <pad>=0, </s>=1, <unk>=2, then chars."""
    chars = sorted(set("".join(CORPUS)) - {" "})
    return ([("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
            + [(c, -3.0) for c in chars] + [("▁" + c, -3.5) for c in chars])


@lru_cache(maxsize=4)
def sentencepiece_char_model(vocab_size: int = 100) -> bytes:
    """Serialized char-level sentencepiece model trained in memory (SpeechT5's tokenizer needs one).

    Identity normalization keeps the file small (no 230 KB NFKC table); one line holding every
    ASCII letter, digit and punctuation mark makes sure no printable char maps to <unk>.
    """
    import sentencepiece as spm

    out = io.BytesIO()
    alphabet = string.ascii_letters + string.digits + string.punctuation
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(CORPUS) * 4 + [alphabet] * 4),
        model_writer=out,
        model_type="char",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        pad_id=1, unk_id=3, bos_id=0, eos_id=2,  # same id layout as microsoft/speecht5_tts
        normalization_rule_name="identity",
        minloglevel=2,
    )
    return out.getvalue()
