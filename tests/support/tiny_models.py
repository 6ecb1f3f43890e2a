"""Tiny random checkpoints for every model family polymodal wraps, built offline on demand.

Each ``build_<name>(root)`` seeds torch with 0, builds a randomly initialised model a few KiB
big plus its processor/tokenizer (vocabularies from :mod:`support.vocab`, never the Hub) and
saves both with ``save_pretrained`` into ``root/<name>``. The outputs are nonsense but
deterministic, while every code path, shape and dtype of the real loaders is exercised.

:class:`TinyModels` builds a folder the first time a test asks for it, so a test that needs
Whisper does not pay for Stable Diffusion.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .vocab import (
    bert_vocab,
    byte_level_vocab,
    clip_vocab,
    sentencepiece_char_model,
    t5_unigram_vocab,
)

SEED = 0
IMG = 32  # side of every tiny vision model's input, in pixels
SAMPLING_RATE = 16_000
# Labels of both emotion classifiers (same order as the usual 4-class emotion checkpoints).
EMOTION_LABELS: dict[int, str] = {0: "angry", 1: "happy", 2: "neutral", 3: "sad"}
SPEAKER_EMBEDDING_DIM = 8  # speecht5-tts wants speaker_embeddings of shape (1, 8)
SPEECHT5_MELS = 8
SD_CROSS_DIM = 32

WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
                    "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
# 1501 timestamp tokens <|0.00|> ... <|30.00|>; their ids must start right after <|notimestamps|>.
WHISPER_TIMESTAMPS = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _seed() -> None:
    import torch

    torch.manual_seed(SEED)


def _save(out: Path, *objects: Any) -> Path:
    """save_pretrained every object (model, processor, tokenizer...) into one folder."""
    for obj in objects:
        obj.save_pretrained(out)
    return out


def _token_id(tok: Any, token: str) -> int:
    """Id of one token (convert_tokens_to_ids is typed int | list[int])."""
    token_id = tok.convert_tokens_to_ids(token)
    assert isinstance(token_id, int), (token, token_id)
    return token_id


# ------------------------------------------------------------------ shared parts ---
def _blip_processor() -> Any:
    from transformers import BertTokenizer, BlipImageProcessorPil, BlipProcessor

    tok = BertTokenizer(vocab=bert_vocab(), model_max_length=64)
    tok.add_special_tokens({"bos_token": "[DEC]"})  # BLIP's text decoder starts with [DEC]
    return BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": IMG, "width": IMG}),
                         tokenizer=tok)


def _blip_config(tok: Any) -> Any:
    from transformers import BlipConfig

    return BlipConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=37, max_position_embeddings=64,
            bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id,
            sep_token_id=tok.sep_token_id, eos_token_id=tok.sep_token_id,
        ),
        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=37, image_size=IMG, patch_size=8),
        projection_dim=32,
    )


def _clip_tokenizer(max_len: int = 77) -> Any:
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_len)


def _clip_text_kwargs(tok: Any, hidden: int = 32, max_pos: int = 77) -> dict[str, Any]:
    return dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=37, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=max_pos,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)


_BLIP2_VISION = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                     image_size=IMG, patch_size=8)
_BLIP2_QFORMER = dict(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=37, max_position_embeddings=64, encoder_hidden_size=32)
_BLIP2_QUERIES = 4


# ----------------------------------------------------------------------- builders ---
def build_blip_caption(root: Path) -> Path:
    """BlipForConditionalGeneration + BlipProcessor (image captioning)."""
    from transformers import BlipForConditionalGeneration

    _seed()
    proc = _blip_processor()
    model = BlipForConditionalGeneration(_blip_config(proc.tokenizer)).eval()
    model.generation_config.max_new_tokens = 8
    return _save(root / "blip-caption", model, proc)


def build_blip_caption_varied(root: Path) -> Path:
    """Tiny BLIP captioner whose captions depend on the image (wider random init, std 0.5).

    At the default std 0.02 a tiny random BLIP gives every image the same caption, so a test of
    "each caller gets its own output" could not tell outputs apart; this one can.
    """
    from transformers import BlipForConditionalGeneration

    _seed()
    proc = _blip_processor()
    config = _blip_config(proc.tokenizer)
    for part in (config, config.vision_config, config.text_config):
        part.initializer_range = 0.5
    model = BlipForConditionalGeneration(config).eval()
    return _save(root / "blip-caption-varied", model, proc)


def build_blip_vqa(root: Path) -> Path:
    """BlipForQuestionAnswering + BlipProcessor (load with AutoModelForVisualQuestionAnswering)."""
    from transformers import BlipForQuestionAnswering

    _seed()
    proc = _blip_processor()
    model = BlipForQuestionAnswering(_blip_config(proc.tokenizer)).eval()
    model.generation_config.max_new_tokens = 8
    return _save(root / "blip-vqa", model, proc)


def build_vit_gpt2_caption(root: Path) -> Path:
    """VisionEncoderDecoder (ViT + GPT-2) with a separate image processor and tokenizer, no processor."""
    from transformers import (
        GPT2Config,
        GPT2Tokenizer,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessorPil,
    )

    _seed()
    tok = GPT2Tokenizer(vocab=byte_level_vocab(specials_last=["<|endoftext|>"]), merges=[],
                        model_max_length=64)
    tok.pad_token = tok.eos_token
    ip = ViTImageProcessorPil(size={"height": IMG, "width": IMG})
    enc = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                    image_size=IMG, patch_size=8)
    dec = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=64,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id = tok.bos_token_id
    cfg.pad_token_id = tok.pad_token_id
    cfg.eos_token_id = tok.eos_token_id
    model = VisionEncoderDecoderModel(config=cfg).eval()
    gc = model.generation_config
    gc.decoder_start_token_id = tok.bos_token_id
    gc.pad_token_id, gc.eos_token_id = tok.pad_token_id, tok.eos_token_id
    gc.max_new_tokens = 8
    return _save(root / "vit-gpt2-caption", model, tok, ip)


def build_blip2_opt(root: Path) -> Path:
    """Blip2ForConditionalGeneration over a decoder-only OPT LM (GPT2Tokenizer, bos == eos == </s>)."""
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessorPil,
        GPT2Tokenizer,
    )

    _seed()
    tok = GPT2Tokenizer(vocab=byte_level_vocab(specials_first=["<s>", "<pad>", "</s>", "<unk>"]), merges=[],
                        bos_token="</s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                        model_max_length=64)
    proc = Blip2Processor(image_processor=BlipImageProcessorPil(size={"height": IMG, "width": IMG}),
                          tokenizer=tok, num_query_tokens=_BLIP2_QUERIES)  # adds "<image>" to tok
    cfg = Blip2Config(
        vision_config=_BLIP2_VISION, qformer_config=_BLIP2_QFORMER,
        text_config=dict(model_type="opt", vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                         ffn_dim=37, num_attention_heads=2, max_position_embeddings=128,
                         word_embed_proj_dim=32, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
        num_query_tokens=_BLIP2_QUERIES, image_token_index=_token_id(tok, "<image>"),
    )
    model = Blip2ForConditionalGeneration(cfg).eval()
    model.generation_config.max_new_tokens = 8
    return _save(root / "blip2-opt", model, proc)


def build_blip2_t5(root: Path) -> Path:
    """Blip2ForConditionalGeneration over an encoder-decoder T5 LM (flan-t5 style).

    A random T5 tends to generate only <pad> (decodes to ""): tests should pass
    ``suppress_tokens=[pad_token_id]`` and ``min_new_tokens``.
    """
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessorPil,
        T5Tokenizer,
    )

    _seed()
    tok = T5Tokenizer(vocab=t5_unigram_vocab(), extra_ids=0, model_max_length=64)
    proc = Blip2Processor(image_processor=BlipImageProcessorPil(size={"height": IMG, "width": IMG}),
                          tokenizer=tok, num_query_tokens=_BLIP2_QUERIES)
    cfg = Blip2Config(
        vision_config=_BLIP2_VISION, qformer_config=_BLIP2_QFORMER,
        text_config=dict(model_type="t5", vocab_size=len(tok), d_model=32, d_ff=37, d_kv=16, num_layers=1,
                         num_decoder_layers=1, num_heads=2, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id),
        num_query_tokens=_BLIP2_QUERIES, image_token_index=_token_id(tok, "<image>"),
    )
    model = Blip2ForConditionalGeneration(cfg).eval()
    model.generation_config.max_new_tokens = 8
    return _save(root / "blip2-t5", model, proc)


def build_whisper_asr(root: Path) -> Path:
    """WhisperForConditionalGeneration + WhisperProcessor with real Whisper geometry (80 mels, 30 s).

    Special tokens keep the real relative order (language tokens right after
    <|startoftranscript|>, the 1501 timestamp tokens right after <|notimestamps|>) so
    ``return_timestamps=True`` and long-form audio (> 30 s) work as with a real checkpoint.
    """
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    _seed()
    tok = WhisperTokenizer(vocab=byte_level_vocab(specials_last=WHISPER_SPECIALS + WHISPER_TIMESTAMPS),
                           merges=[], extra_special_tokens=WHISPER_SPECIALS[1:], model_max_length=448)
    tok.pad_token = "<|endoftext|>"
    fe = WhisperFeatureExtractor(feature_size=80, sampling_rate=SAMPLING_RATE, chunk_length=30)
    proc = WhisperProcessor(feature_extractor=fe, tokenizer=tok)
    ids = {t: _token_id(tok, t) for t in WHISPER_SPECIALS}
    eot = ids["<|endoftext|>"]
    cfg = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=1500, max_target_positions=448,
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=ids["<|startoftranscript|>"],
    )
    model = WhisperForConditionalGeneration(cfg).eval()
    # PITFALL: custom fields (lang_to_id, task_to_id, no_timestamps_token_id) set on the default
    # generation_config (created with _from_model_config=True) are written to disk but dropped on
    # reload. Assigning a fresh GenerationConfig keeps them.
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=True,
        lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        prev_sot_token_id=ids["<|startofprev|>"],
        suppress_tokens=[], begin_suppress_tokens=[eot],
        max_initial_timestamp_index=50, max_new_tokens=10,
    )
    return _save(root / "whisper-asr", model, proc)


def build_clip(root: Path) -> Path:
    """CLIPModel + CLIPProcessor (zero-shot image classification, image-text similarity)."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    _seed()
    tok = _clip_tokenizer()
    ip = CLIPImageProcessorPil(size={"shortest_edge": IMG}, crop_size={"height": IMG, "width": IMG})
    cfg = CLIPConfig(
        text_config=_clip_text_kwargs(tok),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                           image_size=IMG, patch_size=8),
        projection_dim=16,
    )
    model = CLIPModel(cfg).eval()
    return _save(root / "clip", model, CLIPProcessor(image_processor=ip, tokenizer=tok))


def build_speecht5_tts(root: Path) -> Path:
    """SpeechT5ForTextToSpeech + SpeechT5Processor (char sentencepiece tokenizer trained in memory).

    Needs ``speaker_embeddings`` of shape (1, SPEAKER_EMBEDDING_DIM), a local vocoder (the TTS
    pipeline otherwise fetches microsoft/speecht5_hifigan) and ``minlenratio=1.0`` so the random
    decoder does not stop at once.
    """
    from transformers import (
        SpeechT5Config,
        SpeechT5FeatureExtractor,
        SpeechT5ForTextToSpeech,
        SpeechT5Processor,
        SpeechT5Tokenizer,
    )

    _seed()
    with tempfile.TemporaryDirectory() as td:
        spm_path = Path(td) / "spm_char.model"
        spm_path.write_bytes(sentencepiece_char_model())
        tok = SpeechT5Tokenizer(vocab_file=str(spm_path))
        proc = SpeechT5Processor(feature_extractor=SpeechT5FeatureExtractor(num_mel_bins=SPEECHT5_MELS),
                                 tokenizer=tok)
        cfg = SpeechT5Config(
            vocab_size=len(tok), hidden_size=16, encoder_layers=1, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
            num_mel_bins=SPEECHT5_MELS, speech_decoder_prenet_units=16, speech_decoder_postnet_units=16,
            speech_decoder_postnet_layers=2, speaker_embedding_dim=SPEAKER_EMBEDDING_DIM, reduction_factor=2,
            max_speech_positions=256, max_text_positions=64, encoder_max_relative_position=16,
            pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.eos_token_id,
        )
        model = SpeechT5ForTextToSpeech(cfg).eval()
        return _save(root / "speecht5-tts", model, proc)


def build_speecht5_hifigan(root: Path) -> Path:
    """SpeechT5HifiGan vocoder matching speecht5-tts (8 mel bins, 256x upsampling, 16 kHz)."""
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    _seed()
    cfg = SpeechT5HifiGanConfig(model_in_dim=SPEECHT5_MELS, upsample_initial_channel=16,
                                upsample_rates=[4, 4, 4, 4], upsample_kernel_sizes=[8, 8, 8, 8],
                                resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
                                sampling_rate=SAMPLING_RATE)
    return _save(root / "speecht5-hifigan", SpeechT5HifiGan(cfg).eval())


def build_sd_tiny(root: Path) -> Path:
    """diffusers StableDiffusionPipeline folder (UNet/VAE with 4-8 channels, CLIP text encoder, DDIM).

    VAE scale factor is 2; use e.g. height=width=32 and num_inference_steps=2 in tests.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    _seed()
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=SD_CROSS_DIM, norm_num_groups=2, attention_head_dim=2,
    )
    vae = AutoencoderKL(
        block_out_channels=(4, 8), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4, norm_num_groups=2, sample_size=32,
    )
    tok = _clip_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(**_clip_text_kwargs(tok, hidden=SD_CROSS_DIM)))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    return _save(root / "sd-tiny", pipe)


def build_qwen2_chat(root: Path) -> Path:
    """Qwen2ForCausalLM + Qwen2Tokenizer with a ChatML chat template (eos = <|im_end|>, <|endoftext|>)."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

    _seed()
    tok = Qwen2Tokenizer(vocab=byte_level_vocab(specials_last=QWEN_SPECIALS), merges=[],
                         extra_special_tokens=QWEN_SPECIALS[1:], model_max_length=512)
    tok.chat_template = CHATML_TEMPLATE  # written to chat_template.jinja by save_pretrained
    eos = [_token_id(tok, "<|im_end|>"), _token_id(tok, "<|endoftext|>")]
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, bos_token_id=None, eos_token_id=eos[0],
                      pad_token_id=tok.pad_token_id)
    model = Qwen2ForCausalLM(cfg).eval()
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=tok.pad_token_id,
                                               max_new_tokens=16, do_sample=False)
    return _save(root / "qwen2-chat", model, tok)


def build_audio_emotion(root: Path) -> Path:
    """Wav2Vec2ForSequenceClassification + Wav2Vec2FeatureExtractor (16 kHz), labels EMOTION_LABELS.

    Works with ``pipeline("audio-classification")``, AutoModelForAudioClassification and
    AutoFeatureExtractor. NOT with AutoProcessor: for model_type wav2vec2 it resolves
    Wav2Vec2Processor, which needs a CTC tokenizer vocab this (like real emotion checkpoints)
    does not have, and fails with a TypeError.
    """
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    _seed()
    cfg = Wav2Vec2Config(
        vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 8),  # 80 samples per frame
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=16,
        feat_extract_norm="layer", do_stable_layer_norm=True, mask_time_prob=0.0,
        id2label=dict(EMOTION_LABELS), label2id={v: k for k, v in EMOTION_LABELS.items()},
        problem_type="single_label_classification",
    )
    model = Wav2Vec2ForSequenceClassification(cfg).eval()
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLING_RATE, padding_value=0.0,
                                  do_normalize=True, return_attention_mask=True)
    return _save(root / "audio-emotion", model, fe)


def build_face_emotion(root: Path) -> Path:
    """ViTForImageClassification + ViTImageProcessorPil (32x32), labels EMOTION_LABELS."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    _seed()
    cfg = ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        image_size=IMG, patch_size=8,
        id2label=dict(EMOTION_LABELS), label2id={v: k for k, v in EMOTION_LABELS.items()},
        problem_type="single_label_classification",
    )
    model = ViTForImageClassification(cfg).eval()
    return _save(root / "face-emotion", model, ViTImageProcessorPil(size={"height": IMG, "width": IMG}))


# What the "-tuned" emotion classifiers were taught (a two-sided call: the test bed's calm half and upset half).
TUNED_FACES = {"none": "happy", "bgr": "angry"}
"""astronaut_head tint -> label the tuned face classifier gives it."""
TUNED_TONES = {220.0: "happy", 1760.0: "angry"}
"""Tone frequency (Hz) -> label the tuned voice classifier gives it."""


def _fine_tune(model: Any, batches: list[tuple[dict[str, Any], list[str]]], steps: int, lr: float) -> Any:
    """A few full-batch Adam steps on labelled inputs, so a random classifier really tells them apart."""
    import torch

    labels = {v: k for k, v in model.config.id2label.items()}
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        for inputs, names in batches:
            optimiser.zero_grad()
            loss = model(**inputs, labels=torch.tensor([labels[n] for n in names])).loss
            loss.backward()
            optimiser.step()
    return model.eval()


def build_face_emotion_tuned(root: Path) -> Path:
    """face-emotion fine-tuned on the astronaut's face: true colours -> happy, red/blue swapped -> angry.

    Trained on jittered crops around the face (the boxes a detector gives vary), so it reads the
    crops the emotion recognizer cuts out of a generated call. Needs scikit-image (the photo).
    """
    import numpy as np
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from .face_media import astronaut_head

    base = build_face_emotion(root / "base")
    processor = AutoImageProcessor.from_pretrained(base)
    model = AutoModelForImageClassification.from_pretrained(base)
    rng = np.random.default_rng(SEED)
    images, names = [], []
    for tint, label in TUNED_FACES.items():
        head = Image.fromarray(astronaut_head(220, tint))
        for _ in range(12):  # the face is about (55..150, 45..140) of the 220 px head; jitter the box
            left, top = rng.integers(25, 65), rng.integers(15, 55)
            side = int(rng.integers(100, 150))
            images.append(head.crop((left, top, left + side, top + side)))
            names.append(label)
    _fine_tune(model, [(dict(processor(images=images, return_tensors="pt")), names)], steps=40, lr=3e-3)
    shutil.rmtree(base)
    return _save(root / "face-emotion-tuned", model, processor)


def build_audio_emotion_tuned(root: Path) -> Path:
    """audio-emotion fine-tuned on tones: 220 Hz -> happy, 1760 Hz -> angry (any phase, level, length)."""
    import numpy as np
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    base = build_audio_emotion(root / "base")
    extractor = AutoFeatureExtractor.from_pretrained(base)
    model = AutoModelForAudioClassification.from_pretrained(base)
    rng = np.random.default_rng(SEED)
    clips, names = [], []
    model.freeze_feature_encoder()  # the conv front end is most of the cost; the layers above learn enough
    for freq, label in TUNED_TONES.items():
        for _ in range(4):
            seconds = float(rng.uniform(0.5, 1.2))
            t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
            clips.append((rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3))).astype("float32"))
            names.append(label)
    batch = dict(extractor(clips, sampling_rate=SAMPLING_RATE, padding=True, return_tensors="pt"))
    _fine_tune(model, [(batch, names)], steps=20, lr=5e-3)
    shutil.rmtree(base)
    return _save(root / "audio-emotion-tuned", model, extractor)


IDEFICS_SPECIALS = ["<|endoftext|>", "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
# Idefics3/SmolVLM's template: "User:<image>question<end_of_utterance>\nAssistant:".
IDEFICS_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_idefics3_chat(root: Path) -> Path:
    """Idefics3ForConditionalGeneration (SmolVLM's family: SigLIP-style vision + Llama LM) + Idefics3Processor.

    A chat VLM answering through ``apply_chat_template`` with an image + text message. No image
    splitting, 32x32 images, 8-pixel patches and scale factor 2: 4 image tokens per image.
    """
    from transformers import (
        GenerationConfig,
        GPT2Tokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    _seed()
    tok = GPT2Tokenizer(vocab=byte_level_vocab(specials_last=IDEFICS_SPECIALS), merges=[],
                        bos_token="<|endoftext|>", eos_token="<end_of_utterance>", unk_token="<|endoftext|>",
                        pad_token="<|endoftext|>", extra_special_tokens=IDEFICS_SPECIALS[1:], model_max_length=512)
    ip = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": IMG},
                                   max_image_size={"longest_edge": IMG})
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=4, chat_template=IDEFICS_TEMPLATE)
    eos = _token_id(tok, "<end_of_utterance>")
    cfg = Idefics3Config(
        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                           image_size=IMG, patch_size=8),
        text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=32, intermediate_size=37,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=512, pad_token_id=tok.pad_token_id, eos_token_id=eos),
        scale_factor=2, image_token_id=_token_id(tok, "<image>"), pad_token_id=tok.pad_token_id,
    )
    model = Idefics3ForConditionalGeneration(cfg).eval()
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=tok.pad_token_id, do_sample=False)
    return _save(root / "idefics3-chat", model, proc)


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "blip-caption": build_blip_caption,
    "blip-caption-varied": build_blip_caption_varied,
    "blip-vqa": build_blip_vqa,
    "vit-gpt2-caption": build_vit_gpt2_caption,
    "blip2-opt": build_blip2_opt,
    "blip2-t5": build_blip2_t5,
    "whisper-asr": build_whisper_asr,
    "clip": build_clip,
    "speecht5-tts": build_speecht5_tts,
    "speecht5-hifigan": build_speecht5_hifigan,
    "sd-tiny": build_sd_tiny,
    "qwen2-chat": build_qwen2_chat,
    "audio-emotion": build_audio_emotion,
    "face-emotion": build_face_emotion,
    "audio-emotion-tuned": build_audio_emotion_tuned,
    "face-emotion-tuned": build_face_emotion_tuned,
    "idefics3-chat": build_idefics3_chat,
}
NAMES: tuple[str, ...] = tuple(BUILDERS)


class TinyModels:
    """Lazily built tiny checkpoints under one root; each name is built at most once.

    ``path(name)`` (or ``tiny_models / name``) returns the folder, building it on the first
    request. A build goes to a scratch folder that is renamed into place, so a failed build
    leaves nothing half-written behind and the next request retries.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._paths: dict[str, Path] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, name: str) -> Path:
        """Folder of the tiny checkpoint ``name`` (one of NAMES), built on first request."""
        if name not in BUILDERS:
            raise KeyError(f"unknown tiny model {name!r}; known: {', '.join(NAMES)}")
        done = self._paths.get(name)
        if done is not None:
            return done
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._paths:
                self._paths[name] = self._build(name)
            return self._paths[name]

    def __truediv__(self, name: str) -> Path:
        return self.path(name)

    def built(self) -> list[str]:
        """Names built so far (for diagnostics)."""
        return sorted(self._paths)

    def _build(self, name: str) -> Path:
        final, marker = self.root / name, self.root / f".{name}.complete"
        if marker.exists() and final.is_dir():  # built by an earlier TinyModels over the same root
            return final
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.root))
        try:
            produced = BUILDERS[name](scratch)
            shutil.rmtree(final, ignore_errors=True)
            produced.rename(final)
            marker.touch()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return final
