"""Chat models for planning and fusion, built from local checkpoints: any LangChain chat model works.

polymodal talks to an LLM only through LangChain's ``BaseChatModel``, so a hosted model is just
its LangChain object::

    from langchain_openai import ChatOpenAI
    agent = Agent(llm=ChatOpenAI(model="gpt-4o-mini"))

These helpers build the local ones, with no server:

- :func:`local_chat_model`: a transformers causal LM (a hub id or a local folder) through
  langchain-huggingface's ``HuggingFacePipeline`` + ``ChatHuggingFace``;
- :func:`gguf_chat_model`: a GGUF file (llama.cpp's format) read by transformers' GGUF loader,
  which dequantizes it to a normal torch model. Dequantizing is slow (a 135M model: ~20 s, ~1 GB),
  so the converted model is saved once into a cache folder and reloaded from there next time.

The weights load through the shared model cache (one copy per process, on the device the cache
picks), and a missing model fails at once with a ConfigurationError naming it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from polymodal.errors import ConfigurationError, MissingDependencyError
from polymodal.runtime.cache import model_cache
from polymodal.runtime.loading import load_checked, loading

__all__ = ["gguf_cache_dir", "gguf_chat_model", "local_chat_model"]


@dataclass
class _CausalLM:
    model: Any
    tokenizer: Any


def local_chat_model(
    model: str,
    *,
    max_new_tokens: int = 512,
    device: str | None = None,
    trust_remote_code: bool = False,
    **generate_kwargs: Any,
) -> BaseChatModel:
    """A transformers causal LM (hub id or local folder) as a LangChain chat model.

    Decoding is greedy unless ``generate_kwargs`` say otherwise: a planner should answer the
    same request the same way. The prompt is not echoed back (``return_full_text=False``).

    Args:
        model: a hub id (downloaded once; offline it must already be in the HF cache) or a local
            folder with a chat template.
        max_new_tokens: the longest answer; a plan needs a few hundred tokens.
        device: force a device; default: the shared model cache picks cuda > mps > cpu.
        trust_remote_code: passed to ``from_pretrained``; only ever set by the user, never by a plan.
        **generate_kwargs: more generation settings (``temperature=...``, ``do_sample=True``, ...).

    Raises:
        ConfigurationError: the model is missing (a folder that does not exist, a hub id offline).
        MissingDependencyError: langchain-huggingface is not installed.
    """

    _require("langchain_huggingface", "langchain-huggingface")  # before loading any weights

    def load(dev: str, dtype: Any) -> _CausalLM:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = load_checked(
            "chat model", model, lambda: AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        )
        with loading("chat model", model, uses_transformers=True):
            lm: Any = AutoModelForCausalLM.from_pretrained(model, dtype=dtype, trust_remote_code=trust_remote_code)
        return _CausalLM(lm.to(dev).eval(), tokenizer)

    bundle = model_cache().get(f"polymodal.llms:{model}", load, device=device, label=f"chat model ({model})")
    return _chat_model(bundle, model, max_new_tokens, generate_kwargs)


def _chat_model(bundle: _CausalLM, model_id: str, max_new_tokens: int, generate_kwargs: dict[str, Any]) -> Any:
    from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline
    from transformers import pipeline

    if bundle.tokenizer.chat_template is None:
        msg = f"chat model {model_id!r} has no chat template: use an instruction-tuned (chat) checkpoint"
        raise ConfigurationError(msg)
    settings = {"max_new_tokens": max_new_tokens, "do_sample": False, **generate_kwargs}
    pipe = pipeline("text-generation", model=bundle.model, tokenizer=bundle.tokenizer, return_full_text=False,
                    **settings)
    # tokenizer= stops ChatHuggingFace from loading it again by model_id (a hub lookup offline).
    return ChatHuggingFace(llm=HuggingFacePipeline(pipeline=pipe, model_id=model_id), tokenizer=bundle.tokenizer)


def gguf_chat_model(
    path: str | Path,
    *,
    max_new_tokens: int = 512,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    **generate_kwargs: Any,
) -> BaseChatModel:
    """A GGUF model file as a LangChain chat model, through transformers' GGUF loader.

    The first call dequantizes the file and saves the result (model + tokenizer) under
    ``cache_dir`` (default :func:`gguf_cache_dir`), keyed by the file's name, size and mtime;
    later calls, in any process, load that folder in well under a second.

    Raises:
        ConfigurationError: the file does not exist or is not a GGUF model transformers can read.
        MissingDependencyError: the ``gguf`` package (or accelerate) is not installed.
    """
    gguf = Path(path).expanduser()
    if not gguf.is_file():
        msg = f"chat model: GGUF file {str(gguf)!r} does not exist"
        raise ConfigurationError(msg)
    folder = converted_gguf(gguf, Path(cache_dir) if cache_dir else gguf_cache_dir())
    return local_chat_model(str(folder), max_new_tokens=max_new_tokens, device=device, **generate_kwargs)


def gguf_cache_dir() -> Path:
    """Where dequantized GGUF models are kept: ``$POLYMODAL_CACHE/gguf``, else ``~/.cache/polymodal/gguf``."""
    root = os.environ.get("POLYMODAL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "polymodal")
    return Path(root) / "gguf"


def converted_gguf(gguf: Path, cache_dir: Path) -> Path:
    """The folder holding ``gguf`` converted to a plain transformers checkpoint (converting once)."""
    stat = gguf.stat()
    digest = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = cache_dir / f"{gguf.stem}-{digest}"
    if (folder / "config.json").is_file():
        return folder
    _require("gguf", "gguf")
    _require("accelerate", "accelerate")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, name = str(gguf.parent), gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
        model: Any = AutoModelForCausalLM.from_pretrained(where, gguf_file=name)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        msg = f"chat model: {str(gguf)!r} is not a GGUF model transformers can load ({type(exc).__name__}: {exc})"
        raise ConfigurationError(msg) from exc
    # The weights are already dequantized: drop the quantizer so save_pretrained writes plain weights.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache_dir))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(folder)  # atomic: a crash mid-save never leaves a half-written folder in the cache
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (folder / "config.json").is_file():  # not a lost race with another process
            raise
    return folder


def _require(module: str, package: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError("local chat models", package, "local-llm")
