"""Tests of the test bed: every tiny checkpoint loads offline through the normal Auto classes or
pipelines and yields outputs of the right shape, and every media generator writes decodable files.
"""

from __future__ import annotations

import os
import time
import wave
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from support import media_files
from support.media_files import MediaFactory
from support.tiny_models import EMOTION_LABELS, NAMES, SPEAKER_EMBEDDING_DIM, TinyModels

EXPECTED_NAMES = {
    "blip-caption", "blip-caption-varied", "vit-gpt2-caption", "blip2-opt", "blip2-t5", "blip-vqa", "whisper-asr",
    "clip", "speecht5-tts", "speecht5-hifigan", "sd-tiny", "qwen2-chat", "audio-emotion", "face-emotion",
    "idefics3-chat", "audio-emotion-tuned", "face-emotion-tuned",
}


@pytest.fixture(scope="module")
def image() -> Any:
    """One random 64x48 RGB PIL image shared by the vision tests."""
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))


def _sine(seconds: float = 1.0, sr: int = 16_000) -> np.ndarray:
    return media_files.tone(seconds, sr)


# ------------------------------------------------------------------- environment ---
def test_environment_is_offline_and_single_threaded() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_hub_id_fails_fast_offline() -> None:
    from transformers import AutoConfig

    t0 = time.perf_counter()
    with pytest.raises(OSError):
        AutoConfig.from_pretrained("some-org/some-model-that-is-not-here")
    assert time.perf_counter() - t0 < 5


# ---------------------------------------------------------------- TinyModels API ---
def test_registry_has_every_family() -> None:
    assert set(NAMES) == EXPECTED_NAMES


def test_builds_lazily_once_and_deterministically(tmp_path: Path) -> None:
    models = TinyModels(tmp_path / "a")
    path = models.path("face-emotion")
    assert path == tmp_path / "a" / "face-emotion" and (path / "config.json").is_file()
    assert models.built() == ["face-emotion"]  # nothing else paid for
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert models / "face-emotion" == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    again = TinyModels(tmp_path / "b").path("face-emotion")
    assert (again / "model.safetensors").read_bytes() == (path / "model.safetensors").read_bytes()
    with pytest.raises(KeyError, match="unknown tiny model"):
        models.path("no-such-model")


def test_concurrent_requests_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from support import tiny_models as tm

    calls: list[Path] = []
    real = tm.BUILDERS["speecht5-hifigan"]

    def counting(root: Path) -> Path:
        calls.append(root)
        return real(root)

    monkeypatch.setitem(tm.BUILDERS, "speecht5-hifigan", counting)
    models = TinyModels(tmp_path)
    with ThreadPoolExecutor(4) as pool:
        paths = set(pool.map(lambda _: models.path("speecht5-hifigan"), range(8)))
    assert paths == {tmp_path / "speecht5-hifigan"} and len(calls) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".speecht5-hifigan-")]  # scratch removed


# ------------------------------------------------------------ vision + language ---
def test_blip_caption(tiny_models: TinyModels, image: Any) -> None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline

    path = tiny_models.path("blip-caption")
    proc = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert type(model).__name__ == "BlipForConditionalGeneration"
    with torch.no_grad():
        ids = model.generate(**proc(images=image, text="a photo of", return_tensors="pt"), max_new_tokens=4)
    assert ids.ndim == 2
    out = pipeline("image-text-to-text", model=str(path))(image, text="", max_new_tokens=4)
    assert isinstance(out[0]["generated_text"], str)


def test_blip_vqa(tiny_models: TinyModels, image: Any) -> None:
    import torch
    from transformers import AutoModelForVisualQuestionAnswering, AutoProcessor

    path = tiny_models.path("blip-vqa")
    proc = AutoProcessor.from_pretrained(path)
    model = AutoModelForVisualQuestionAnswering.from_pretrained(path)
    assert type(model).__name__ == "BlipForQuestionAnswering"
    with torch.no_grad():
        ids = model.generate(**proc(images=image, text="what color is the car?", return_tensors="pt"),
                             max_new_tokens=4)
    assert isinstance(proc.batch_decode(ids, skip_special_tokens=True)[0], str)


def test_vit_gpt2_caption(tiny_models: TinyModels, image: Any) -> None:
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

    path = tiny_models.path("vit-gpt2-caption")
    ip, tok = AutoImageProcessor.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert type(model).__name__ == "VisionEncoderDecoderModel"
    with torch.no_grad():
        pixel_values = ip(images=image, return_tensors="pt").pixel_values
        ids = model.generate(pixel_values=pixel_values, max_new_tokens=4)
    assert ids.shape[0] == 1 and isinstance(tok.decode(ids[0], skip_special_tokens=True), str)


@pytest.mark.parametrize("name", ["blip2-opt", "blip2-t5"])
def test_blip2(tiny_models: TinyModels, image: Any, name: str) -> None:
    from transformers import pipeline

    pipe = pipeline("image-text-to-text", model=str(tiny_models.path(name)))
    assert type(pipe.model).__name__ == "Blip2ForConditionalGeneration"
    # a random T5 may emit only <pad> (decoded as ""): suppress it
    gen = {"suppress_tokens": [pipe.tokenizer.pad_token_id]} if name == "blip2-t5" else {}
    out = pipe(image, text="Question: what is in the image? Answer:", max_new_tokens=4, min_new_tokens=4,
               return_full_text=False, generate_kwargs=gen)
    assert len(out[0]["generated_text"]) > 0


def test_clip_zero_shot(tiny_models: TinyModels, image: Any) -> None:
    from transformers import AutoModelForZeroShotImageClassification, pipeline

    path = tiny_models.path("clip")
    assert type(AutoModelForZeroShotImageClassification.from_pretrained(path)).__name__ == "CLIPModel"
    classify = pipeline("zero-shot-image-classification", model=str(path))
    out = classify(image, candidate_labels=["cat", "dog", "car"])
    assert {o["label"] for o in out} == {"cat", "dog", "car"}
    assert abs(sum(o["score"] for o in out) - 1) < 1e-4


def test_qwen2_chat(tiny_models: TinyModels) -> None:
    from transformers import AutoTokenizer, pipeline

    path = tiny_models.path("qwen2-chat")
    msgs = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hi"}]
    prompt = AutoTokenizer.from_pretrained(path).apply_chat_template(msgs, tokenize=False,
                                                                     add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    out = pipeline("text-generation", model=str(path))(msgs, max_new_tokens=4)
    assert out[0]["generated_text"][-1]["role"] == "assistant"


def test_face_emotion(tiny_models: TinyModels, image: Any) -> None:
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    path = tiny_models.path("face-emotion")
    model = AutoModelForImageClassification.from_pretrained(path)
    assert model.config.id2label == EMOTION_LABELS
    with torch.no_grad():
        logits = model(**AutoImageProcessor.from_pretrained(path)(images=image, return_tensors="pt")).logits
    assert logits.shape == (1, 4)
    out = pipeline("image-classification", model=str(path))(image, top_k=4)
    assert sorted(o["label"] for o in out) == sorted(EMOTION_LABELS.values())
    assert abs(sum(o["score"] for o in out) - 1) < 1e-4


# ------------------------------------------------------------------------- audio ---
def test_whisper_asr(tiny_models: TinyModels) -> None:
    import torch
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

    path = tiny_models.path("whisper-asr")
    proc = AutoProcessor.from_pretrained(path)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(path)
    assert model.generation_config.lang_to_id  # survived the reload
    feats = proc(_sine(2.0), sampling_rate=16_000, return_tensors="pt").input_features
    assert feats.shape == (1, 80, 3000)
    with torch.no_grad():
        ids = model.generate(feats, language="en", task="transcribe", max_new_tokens=4)
    assert ids.ndim == 2
    asr = pipeline("automatic-speech-recognition", model=str(path))
    out = asr({"raw": _sine(2.0), "sampling_rate": 16_000}, return_timestamps=True,
              generate_kwargs={"language": "en", "max_new_tokens": 4})
    assert isinstance(out["text"], str) and "chunks" in out
    # long-form (> 30 s) sequential decoding needs the timestamp tokens right after <|notimestamps|>
    long = asr({"raw": _sine(35.0), "sampling_rate": 16_000}, return_timestamps=True,
               generate_kwargs={"language": "en", "max_new_tokens": 4})
    assert isinstance(long["text"], str)


def test_audio_emotion(tiny_models: TinyModels) -> None:
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification, pipeline

    path = tiny_models.path("audio-emotion")
    model = AutoModelForAudioClassification.from_pretrained(path)
    fe = AutoFeatureExtractor.from_pretrained(path)
    assert model.config.id2label == EMOTION_LABELS and fe.sampling_rate == 16_000
    with torch.no_grad():
        logits = model(**fe(_sine(1.0), sampling_rate=16_000, return_tensors="pt")).logits
    assert logits.shape == (1, 4)
    classify = pipeline("audio-classification", model=str(path))
    out = classify({"raw": _sine(1.0), "sampling_rate": 16_000}, top_k=4)
    assert sorted(o["label"] for o in out) == sorted(EMOTION_LABELS.values())


def test_speecht5_tts(tiny_models: TinyModels) -> None:
    import torch
    from transformers import SpeechT5HifiGan, pipeline

    vocoder = SpeechT5HifiGan.from_pretrained(tiny_models.path("speecht5-hifigan"))
    tts = pipeline("text-to-speech", model=str(tiny_models.path("speecht5-tts")), vocoder=vocoder)
    out = tts("hello world", forward_params={"speaker_embeddings": torch.zeros(1, SPEAKER_EMBEDDING_DIM),
                                             "minlenratio": 1.0, "maxlenratio": 2.0})
    assert out["audio"].ndim == 1 and out["audio"].size > 0 and out["sampling_rate"] == 16_000


# ------------------------------------------------------------------------- image ---
def test_sd_tiny(tiny_models: TinyModels) -> None:
    """Cheap on purpose: 2 steps at 32x32 (< 1 s)."""
    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_models.path("sd-tiny"))
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    images = pipe("a cat", num_inference_steps=2, height=32, width=32, output_type="np",
                  generator=torch.Generator("cpu").manual_seed(0)).images
    assert images.shape == (1, 32, 32, 3)


# ------------------------------------------------------------------------- media ---
def test_images(media: MediaFactory) -> None:
    from PIL import Image

    with Image.open(media.png(size=(40, 30), color=(10, 200, 30))) as img:
        assert (img.format, img.size, img.getpixel((5, 5))) == ("PNG", (40, 30), (10, 200, 30))
    with Image.open(media.jpeg()) as img:
        assert img.format == "JPEG" and img.size == (64, 48)
        assert np.abs(np.asarray(img, dtype=int)[24, 32] - (200, 30, 30)).max() <= 8
    with Image.open(media.text_image("Invoice 42")) as img:
        pixels = np.asarray(img.convert("L"))
        assert img.width > 200 and pixels.min() < 50 and pixels[0, 0] == 255  # dark text on white


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_wav(media: MediaFactory, dtype: Literal["int16", "float32"]) -> None:
    import av

    path = media.wav(seconds=0.5, sample_rate=22_050, channels=2, dtype=dtype)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert (stream.rate, stream.channels) == (22_050, 2)
        frames = list(container.decode(audio=0))
    assert sum(f.samples for f in frames) == 11_025
    full_scale = 32767 if dtype == "int16" else 1
    peak = max(np.abs(f.to_ndarray().astype(float)).max() for f in frames) / full_scale
    assert 0.49 < peak <= 0.51
    with wave.open(str(media.wav(name="silent.wav", silent=True))) as w:
        assert (w.getframerate(), w.getnframes()) == (16_000, 16_000)
        assert not any(w.readframes(16_000))


def test_speech(media: MediaFactory) -> None:
    def read(path: Path) -> tuple[int, np.ndarray]:
        with wave.open(str(path)) as w:
            assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
            return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32768.0

    rate, short = read(media.speech("hello world", name="short.wav"))  # fails in CI when espeak-ng is missing
    _, long = read(media.speech("hello world, this sentence says a good deal more than the first one",
                                name="long.wav"))
    assert rate == 22_050
    assert 0.5 < short.size / rate < 2.5, short.size / rate  # two words of speech, not a click or a minute
    assert long.size > 2.5 * short.size  # more words, more speech
    loud = np.abs(short) > 0.05
    assert np.sqrt(np.mean(short**2)) > 0.02 and 0.1 < loud.mean() < 0.95  # voiced, with pauses: not noise, not silence


def test_video_with_audio(media: MediaFactory) -> None:
    import av

    scenes = [((255, 0, 0), 1.0), ((0, 0, 255), 1.5)]
    path = media.video(scenes=scenes, fps=10, audio="tone")
    with av.open(str(path)) as container:
        assert container.streams.audio, "no audio stream"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == media_files.video_frame_count(scenes, 10) == 25
    assert frames[0].shape == (48, 64, 3)
    assert frames[0][24, 32].argmax() == 0 and frames[-1][24, 32].argmax() == 2  # red, then blue


@pytest.mark.parametrize(("name", "codec"), [("clip.mp4", "mpeg4"), ("clip.avi", None), ("clip.mkv", None),
                                                 ("clip.webm", None)])
def test_video_other_encoders(media: MediaFactory, name: str, codec: str | None) -> None:
    import av

    path = media.video(name=name, video_codec=codec, audio="tone")
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 1
        assert sum(1 for _ in container.decode(video=0)) == 40


def test_corrupt_copy(media: MediaFactory) -> None:
    import av
    from PIL import Image

    video = media.video()
    broken = media.corrupt(video, keep_bytes=200)
    assert broken.stat().st_size == 200 and broken != video
    with pytest.raises(av.error.FFmpegError), av.open(str(broken)) as container:
        list(container.decode(video=0))
    with pytest.raises(OSError), Image.open(media.corrupt(media.png(), keep_bytes=60)) as img:
        img.load()
