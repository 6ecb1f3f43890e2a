"""Each model tool gives what its checkpoint gives when called directly, outside polymodal.

A tool that returned a constant caption, dropped the question, transcribed the wrong audio or
ignored the seed passed every test that compared the tool only with itself. Here each tool's
output is compared with the checkpoint's own ``generate`` + decode (or forward pass, or diffusers
pipeline) on the same input, the way tests/test_clip_matcher.py does for CLIP. The text models
are input-sensitive copies of the tiny checkpoints (tests/support/reference.py), and each test
first proves that its inputs give different reference outputs, so a tool ignoring its input fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support.reference import distinct, sensitive_copy

from polymodal import Attachment
from polymodal.tools import Captioner, EmotionRecognizer, ImageGenerator, SpeechSynthesizer, Transcriber, VisualQA

RATE = 16_000


@pytest.fixture(scope="module")
def sensitive(tiny_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sensitive")

    def build(name: str, gain: float = 1.0) -> str:
        return str(sensitive_copy(tiny_models.path(name), folder / f"{name}-{gain:g}", gain=gain))

    return build


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Attachment]:
    folder = tmp_path_factory.mktemp("reference_images")
    rng = np.random.default_rng(1)
    pictures = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    pictures += [Image.new("RGB", (32, 32), colour) for colour in [(255, 255, 255), (200, 20, 20)]]
    attachments = []
    for index, picture in enumerate(pictures):
        picture.save(folder / f"{index}.png")
        attachments.append(Attachment.from_path(folder / f"{index}.png"))
    return attachments


def tone(freq: float, seconds: float = 2.0) -> Attachment:
    """A rising chirp from ``freq`` to 3x ``freq``: unlike a pure tone, it differs from itself reversed."""
    t = np.arange(int(seconds * RATE)) / RATE
    samples = 0.5 * np.sin(2 * np.pi * freq * (t + t * t / seconds))
    return Attachment.from_audio(samples.astype(np.float32), RATE, f"{freq:g}hz.wav")


def words(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------- captions ---
def test_captioner_equals_blip_generate(sensitive, images):
    folder = sensitive("blip-caption")
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model = BlipForConditionalGeneration.from_pretrained(folder).eval()
    processor = BlipProcessor.from_pretrained(folder)

    def reference(image: Attachment, prompt: str = "") -> str:
        inputs = processor(images=image.image(), text=prompt or None, return_tensors="pt")
        with torch.inference_mode():
            return words(processor.batch_decode(model.generate(**inputs, max_new_tokens=8),
                                                skip_special_tokens=True)[0])

    expected = [reference(image) for image in images]
    assert distinct(expected) >= 3, expected
    captioner = Captioner(model=folder, max_new_tokens=8)
    assert [captioner.execute(image=image).content for image in images] == expected
    assert [o.content for o in captioner.execute_batch([{"image": image} for image in images])] == expected
    prompted = captioner.execute(image=images[0], prompt="a photo of").content
    assert prompted == reference(images[0], "a photo of") and prompted != expected[0]


def test_captioner_equals_vision_encoder_decoder_generate(sensitive, images):
    folder = sensitive("vit-gpt2-caption")
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

    model = VisionEncoderDecoderModel.from_pretrained(folder).eval()
    pixels, tokenizer = AutoImageProcessor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    expected = []
    for image in images:
        with torch.inference_mode():
            out = model.generate(pixels(images=image.image(), return_tensors="pt").pixel_values, max_new_tokens=8)
        expected.append(words(tokenizer.batch_decode(out, skip_special_tokens=True)[0]))
    assert distinct(expected) >= 3, expected
    assert [Captioner(model=folder, max_new_tokens=8).execute(image=image).content for image in images] == expected


# ------------------------------------------------------------------------------ visual QA ---
def test_visual_qa_equals_blip_vqa_generate(sensitive, images):
    folder = sensitive("blip-vqa")
    from transformers import BlipForQuestionAnswering, BlipProcessor

    model, processor = BlipForQuestionAnswering.from_pretrained(folder).eval(), BlipProcessor.from_pretrained(folder)
    questions = ["what colour is it?", "how many squares?"]
    cases = [(image, question) for image in images[2:] for question in questions]
    expected = []
    for image, question in cases:
        with torch.inference_mode():
            out = model.generate(**processor(images=image.image(), text=question, return_tensors="pt"),
                                 max_new_tokens=6)
        expected.append(words(processor.batch_decode(out, skip_special_tokens=True)[0]))
    assert distinct(expected) >= 4, expected
    vqa = VisualQA(model=folder, max_new_tokens=6)
    assert [vqa.execute(image=image, question=question).content for image, question in cases] == expected
    together = vqa.execute(image=images[2], questions=questions).artifact.answers  # one batched call
    assert together == expected[:2]


def test_visual_qa_equals_blip2_generate_with_its_question_prompt(sensitive, images):
    folder = sensitive("blip2-opt")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model, processor = AutoModelForImageTextToText.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)
    cases = [(image, question) for image in images[:3] for question in ["what is it?", "is it red?"]]
    expected = []
    for image, question in cases:
        inputs = processor(images=image.image(), text=f"Question: {question} Answer:", return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=5)
        answer = out[:, inputs["input_ids"].shape[1]:]  # a decoder-only LM returns prompt + answer
        expected.append(words(processor.batch_decode(answer, skip_special_tokens=True)[0]))
    assert distinct(expected) >= 3, expected
    vqa = VisualQA(model=folder, max_new_tokens=5)
    assert [vqa.execute(image=image, question=question).content for image, question in cases] == expected


# -------------------------------------------------------------------------- transcription ---
def test_transcriber_equals_the_whisper_asr_pipeline(sensitive):
    # The reference is transformers' own ASR pipeline over the checkpoint, called as its docs show:
    # for timestamped, chunked output it is Whisper's reference inference (raw ``generate`` + decode
    # differs from it once timestamp tokens appear, which a random model emits anywhere).
    folder = sensitive("whisper-asr", gain=2.0)
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=folder)
    clips = [tone(freq) for freq in (200.0, 900.0, 1600.0, 2300.0)]
    expected = []
    for clip in clips:
        out = asr({"raw": clip.audio(RATE), "sampling_rate": RATE}, chunk_length_s=30, return_timestamps=True,
                  generate_kwargs={"max_new_tokens": 10})
        expected.append(words(out["text"]))
    assert distinct(expected) >= 3, expected
    transcriber = Transcriber(model=folder, max_new_tokens=10)
    assert [transcriber.execute(audio=clip).content for clip in clips] == expected
    assert [o.content for o in transcriber.execute_batch([{"audio": clip} for clip in clips])] == expected


# ------------------------------------------------------------------------------- speech ----
def test_speech_synthesizer_equals_speecht5_generate_and_vocoder(tiny_models, sensitive, tmp_path):
    folder, vocoder_folder = sensitive("speecht5-tts"), str(tiny_models.path("speecht5-hifigan"))
    from transformers import AutoProcessor, SpeechT5ForTextToSpeech, SpeechT5HifiGan

    speaker = np.linspace(-1, 1, 8, dtype=np.float32)
    np.save(tmp_path / "speaker.npy", speaker)
    model, vocoder = SpeechT5ForTextToSpeech.from_pretrained(folder).eval(), SpeechT5HifiGan.from_pretrained(
        vocoder_folder).eval()
    tokenizer = AutoProcessor.from_pretrained(folder).tokenizer
    texts = ["Hello world.", "Good morning to you", "Read this aloud"]
    expected = []
    for text in texts:
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        torch.manual_seed(0)  # SpeechT5's decoder prenet keeps its dropout on at inference (as in its paper)
        with torch.inference_mode():
            spectrogram = model.generate(ids, speaker_embeddings=torch.from_numpy(speaker)[None, :], threshold=0.5,
                                         minlenratio=1.0, maxlenratio=2.0)
            expected.append(vocoder(spectrogram[None, :]).reshape(-1).numpy())
    # The tiny vocoder's raw level is ~1e-9 (below one 16-bit step), so both sides are compared at the
    # tool's default output level: normalised to a 0.9 peak.
    expected = [0.9 * wave / np.abs(wave).max() for wave in expected]
    assert distinct(np.round(e[:400], 3).tolist() for e in expected) == len(texts)
    tts = SpeechSynthesizer(model=folder, vocoder=vocoder_folder, speaker_embedding=str(tmp_path / "speaker.npy"),
                            minlenratio=1.0, maxlenratio=2.0)
    for text, wave in zip(texts, expected, strict=True):
        torch.manual_seed(0)
        spoken = tts.execute(text=text).artifact.audio(RATE)
        assert spoken.shape == wave.shape, text  # same sample count as the raw model
        assert np.abs(spoken - wave).max() <= 2 / 32767, text  # 16-bit WAV rounding only


# ------------------------------------------------------------------------------ emotions ---
def test_emotion_recognizer_equals_the_classifiers_forward(sensitive, images):
    voice_folder, face_folder = sensitive("audio-emotion"), sensitive("face-emotion")
    from transformers import (
        AutoFeatureExtractor,
        AutoImageProcessor,
        AutoModelForAudioClassification,
        AutoModelForImageClassification,
    )

    voice, features = AutoModelForAudioClassification.from_pretrained(voice_folder).eval(), \
        AutoFeatureExtractor.from_pretrained(voice_folder)
    face, pixels = AutoModelForImageClassification.from_pretrained(face_folder).eval(), \
        AutoImageProcessor.from_pretrained(face_folder)

    def distribution(model, logits) -> dict[str, float]:
        return {model.config.id2label[i]: p for i, p in enumerate(logits.softmax(-1)[0].tolist())}

    recognizer = EmotionRecognizer(model=voice_folder, face_model=face_folder)
    clips = [tone(freq, 1.0) for freq in (220.0, 880.0, 1760.0)]
    expected_voice = []
    for clip in clips:
        with torch.inference_mode():
            logits = voice(**features(clip.audio(RATE), sampling_rate=RATE, return_tensors="pt")).logits
        expected_voice.append(distribution(voice, logits))
    assert distinct(np.round(list(e.values()), 3).tolist() for e in expected_voice) == len(clips)
    for clip, expected in zip(clips, expected_voice, strict=True):
        assert recognizer.execute(audio=clip).artifact.audio == pytest.approx(expected, abs=1e-5)
    expected_face = []
    for image in images:
        with torch.inference_mode():
            expected_face.append(distribution(face, face(**pixels(images=image.image(), return_tensors="pt")).logits))
    assert distinct(np.round(list(e.values()), 3).tolist() for e in expected_face) >= 3
    for image, expected in zip(images, expected_face, strict=True):
        assert recognizer.execute(image=image).artifact.face == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------------------- generation ---
def test_image_generator_equals_diffusers_with_the_same_seed(tiny_models):
    folder = Path(tiny_models.path("sd-tiny"))
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    generator = ImageGenerator(model=str(folder), default_steps=2)
    seen = []
    for prompt, seed in [("a red cat", 7), ("a red cat", 8), ("a blue dog", 7)]:
        raw = pipe(prompt, num_inference_steps=2, guidance_scale=7.5, width=32, height=32,
                   generator=torch.Generator("cpu").manual_seed(seed)).images[0]
        made = generator.execute(prompt=prompt, seed=seed, width=32, height=32).artifact
        assert np.array_equal(np.asarray(made.image()), np.asarray(raw.convert("RGB"))), (prompt, seed)
        seen.append(np.asarray(raw).tobytes())
    assert distinct(seen) == 3
