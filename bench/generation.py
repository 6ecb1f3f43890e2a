"""What the generating tools cost, measured side by side on the same tiny models and inputs.

Per tool (image_generator on the tiny Stable Diffusion, 2 steps at 32x32; speech_synthesizer on the
tiny SpeechT5 + HiFi-GAN, once with sentences of equal token length — the best case, where all of
them share one ``generate`` call — and once with sentences of mixed lengths):

1. cold vs warm: the first call of a fresh process-wide cache (load + run) vs a call on a loaded model.
2. batched vs one-by-one: ``execute_batch`` of N inputs vs N ``execute`` calls. Ratio = one-by-one / batched.
3. raw library call vs the tool: the same model and input straight through diffusers / transformers vs
   ``tool.execute`` (argument checks, media, Attachment encoding). Ratio = tool / raw.

Both sides of every ratio are checked first, and the script stops (exit 1) when they differ:
the tool's image equals diffusers' pixel for pixel (same seed), a batch differs from one-by-one by
at most one 8-bit level; speech equals the raw model's waveform (normalised to the tool's 0.9 peak,
16-bit rounding) and a batch equals one-by-one within 1e-3. Ratios are medians over interleaved
repeats, with their range. These are tiny models: the ratios measure Python overhead, not compute.

The cases are a list (``CASES``) so that a shared bench/tools.py can import and run them.
Run: ``python bench/generation.py [--repeats 5] [--batch 8]``; no model hub needed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common import median_seconds, paired, require_close, require_equal, work_folder


@dataclass
class Case:
    """One tool's measurements: how to build it, its inputs, the raw library call, and the output checks."""

    name: str
    make_tool: Callable[[Any], Any]
    inputs: Callable[[int], list[dict[str, Any]]]
    raw: Callable[[Any, dict[str, Any]], Callable[[], Any]]
    check: Callable[[Any, Callable[[], Any], dict[str, Any], list[dict[str, Any]]], None]


def _raw_diffusion(models: Any, item: dict[str, Any]) -> Callable[[], Any]:
    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(models.path("sd-tiny")))
    pipe.set_progress_bar_config(disable=True)

    def run() -> Any:
        generator = torch.Generator("cpu").manual_seed(item["seed"])
        return pipe(item["prompt"], num_inference_steps=2, width=item["width"], height=item["height"],
                    guidance_scale=7.5, generator=generator).images[0]

    return run


def _check_images(tool: Any, raw: Callable[[], Any], one: dict[str, Any], inputs: list[dict[str, Any]]) -> None:
    import numpy as np

    made = np.asarray(tool.execute(**one).artifact.image())
    reference = np.asarray(raw().convert("RGB"))
    require_equal("image_generator vs diffusers (same seed)", made.tobytes(), reference.tobytes())
    batched = [np.asarray(o.artifact.image()) for o in tool.execute_batch(inputs)]
    singles = [np.asarray(tool.execute(**item).artifact.image()) for item in inputs]
    require_close("image_generator batched vs one-by-one (8-bit levels)", batched, singles, tolerance=1)


def _raw_speech(models: Any, item: dict[str, Any]) -> Callable[[], Any]:
    import torch
    from transformers import AutoModelForTextToSpectrogram, AutoProcessor, SpeechT5HifiGan

    from polymodal.tools.builtin.speech_synthesizer import default_speaker

    processor = AutoProcessor.from_pretrained(str(models.path("speecht5-tts")))
    model = AutoModelForTextToSpectrogram.from_pretrained(str(models.path("speecht5-tts"))).eval()
    vocoder = SpeechT5HifiGan.from_pretrained(str(models.path("speecht5-hifigan"))).eval()
    speaker = torch.from_numpy(default_speaker(model.config.speaker_embedding_dim)).reshape(1, -1)

    def run() -> Any:
        with torch.inference_mode():
            ids = processor(text=item["text"], return_tensors="pt").input_ids
            return model.generate_speech(ids, speaker, vocoder=vocoder, minlenratio=1.0, maxlenratio=2.0)

    return run


def _check_speech(tool: Any, raw: Callable[[], Any], one: dict[str, Any], inputs: list[dict[str, Any]]) -> None:
    import numpy as np
    import torch

    # SpeechT5's decoder prenet keeps dropout on at inference: seed both sides alike.
    torch.manual_seed(0)
    wave = raw().numpy()
    torch.manual_seed(0)
    spoken = tool.execute(**one).artifact.audio(16000)
    require_close("speech_synthesizer vs SpeechT5 + HiFi-GAN (0.9 peak, 16-bit)", spoken,
                  0.9 * wave / np.abs(wave).max(), tolerance=2 / 32767)
    torch.manual_seed(0)
    batched = [o.artifact.audio(16000) for o in tool.execute_batch(inputs)]
    torch.manual_seed(0)
    singles = [tool.execute(**item).artifact.audio(16000) for item in inputs]
    require_close("speech_synthesizer batched vs one-by-one", batched, singles, tolerance=1e-3)


def _image_generator(models: Any) -> Any:
    from polymodal.tools import ImageGenerator

    return ImageGenerator(model=str(models.path("sd-tiny")), default_steps=2, max_images=None)


def _speech_synthesizer(models: Any) -> Any:
    from polymodal.tools import SpeechSynthesizer

    return SpeechSynthesizer(model=str(models.path("speecht5-tts")), vocoder=str(models.path("speecht5-hifigan")),
                             minlenratio=1.0, maxlenratio=2.0)


MIXED = ["Hi.", "Good morning, this is a test.", "Please call me back tomorrow morning before nine.", "Yes.",
         "The train leaves at half past six from platform four.", "See you soon.", "Thanks a lot for your help!",
         "OK."]

CASES = [
    Case("image_generator", _image_generator,
         lambda n: [{"prompt": f"a lighthouse at night, take {i}", "seed": i, "width": 32, "height": 32}
                    for i in range(n)],
         _raw_diffusion, _check_images),
    Case("speech (equal lengths)", _speech_synthesizer,
         # Same token length per input: the best case, all of them share one generate call.
         lambda n: [{"text": f"Good morning, this is test {i % 10}."} for i in range(n)],
         _raw_speech, _check_speech),
    Case("speech (mixed lengths)", _speech_synthesizer,
         lambda n: [{"text": MIXED[i % len(MIXED)]} for i in range(n)],
         _raw_speech, _check_speech),
]


def measure(case: Case, models: Any, repeats: int, batch: int) -> dict[str, Any]:
    from polymodal.tools import model_cache

    tool = case.make_tool(models)
    one = case.inputs(1)[0]
    inputs = case.inputs(batch)
    raw = case.raw(models, one)
    case.check(tool, raw, one, inputs)  # stops the benchmark when the two sides differ

    def cold() -> object:
        model_cache().clear()
        return tool.execute(**one)

    cold_s = median_seconds(cold, max(1, repeats // 2), warm=False)
    warm, raw_s, tool_raw = paired(lambda: tool.execute(**one), raw, repeats)
    singles, batched, gain = paired(lambda: [tool.execute(**item) for item in inputs],
                                    lambda: tool.execute_batch(inputs), repeats)
    return {"cold": cold_s, "warm": warm, "raw": raw_s, "tool_raw": tool_raw, "batched": batched,
            "one_by_one": singles, "gain": gain}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    import torch
    from support.tiny_models import TinyModels

    torch.set_num_threads(1)
    print(f"tiny models, 1 torch thread, medians of {args.repeats} interleaved repeats (range in brackets); "
          "outputs checked equal first")
    print(f"{'tool':<24}{'cold s':>8}{'warm s':>9}{'cold/warm':>10}{f'batch{args.batch} s':>10}{'1-by-1 s':>10}"
          f"{'1by1/batch':>18}{'raw s':>9}{'tool/raw':>18}")
    with work_folder() as work:
        models = TinyModels(work / "models")
        for case in CASES:
            m = measure(case, models, args.repeats, args.batch)
            warm = m["warm"].median
            print(f"{case.name:<24}{m['cold']:>8.3f}{warm:>9.4f}{m['cold'] / warm:>10.1f}"
                  f"{m['batched'].median:>10.4f}{m['one_by_one'].median:>10.4f}{str(m['gain']):>18}"
                  f"{m['raw'].median:>9.4f}{str(m['tool_raw']):>18}", flush=True)


if __name__ == "__main__":
    main()
