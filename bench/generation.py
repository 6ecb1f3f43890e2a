"""What the generating tools cost, measured side by side on the same tiny models and inputs.

Per tool (image_generator on the tiny Stable Diffusion, 2 steps at 32x32; speech_synthesizer on the
tiny SpeechT5 + HiFi-GAN):

1. cold vs warm: the first call of a fresh process-wide cache (load + run) vs a call on a loaded model.
2. batched vs one-by-one: ``execute_batch`` of N inputs vs N ``execute`` calls. Ratio = one-by-one / batched.
3. raw library call vs the tool: the same model and input straight through diffusers / transformers vs
   ``tool.execute`` (argument checks, media, Attachment encoding). Ratio = tool / raw.

The cases are a list (``CASES``) so that a shared bench/tools.py can import and run them.
Run: ``python bench/generation.py [--repeats 5] [--batch 8]``; no model hub needed.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import median_seconds


@dataclass
class Case:
    """One tool's measurements: how to build it, one input, and the raw library call to compare with."""

    name: str
    make_tool: Callable[[Any], Any]
    inputs: Callable[[int], list[dict[str, Any]]]
    raw: Callable[[Any, dict[str, Any]], Callable[[], object]]




def _raw_diffusion(models: Any, item: dict[str, Any]) -> Callable[[], object]:
    import torch
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(models.path("sd-tiny")))
    pipe.set_progress_bar_config(disable=True)

    def run() -> object:
        generator = torch.Generator("cpu").manual_seed(item["seed"])
        return pipe(item["prompt"], num_inference_steps=2, width=item["width"], height=item["height"],
                    guidance_scale=7.5, generator=generator).images[0]

    return run


def _raw_speech(models: Any, item: dict[str, Any]) -> Callable[[], object]:
    import torch
    from transformers import AutoModelForTextToSpectrogram, AutoProcessor, SpeechT5HifiGan

    from polymodal.tools.speech_synthesizer import default_speaker

    processor = AutoProcessor.from_pretrained(str(models.path("speecht5-tts")))
    model = AutoModelForTextToSpectrogram.from_pretrained(str(models.path("speecht5-tts"))).eval()
    vocoder = SpeechT5HifiGan.from_pretrained(str(models.path("speecht5-hifigan"))).eval()
    speaker = torch.from_numpy(default_speaker(model.config.speaker_embedding_dim)).reshape(1, -1)

    def run() -> object:
        with torch.inference_mode():
            ids = processor(text=item["text"], return_tensors="pt").input_ids
            return model.generate_speech(ids, speaker, vocoder=vocoder, minlenratio=1.0, maxlenratio=2.0)

    return run


def _image_generator(models: Any) -> Any:
    from polymodal.tools import ImageGenerator

    return ImageGenerator(model=str(models.path("sd-tiny")), default_steps=2, max_images=None)


def _speech_synthesizer(models: Any) -> Any:
    from polymodal.tools import SpeechSynthesizer

    return SpeechSynthesizer(model=str(models.path("speecht5-tts")), vocoder=str(models.path("speecht5-hifigan")),
                             minlenratio=1.0, maxlenratio=2.0)


CASES = [
    Case("image_generator", _image_generator,
         lambda n: [{"prompt": f"a lighthouse at night, take {i}", "seed": i, "width": 32, "height": 32}
                    for i in range(n)],
         _raw_diffusion),
    Case("speech_synthesizer", _speech_synthesizer,
         # Same token length per input: equal-length sentences are what share one generate call.
         lambda n: [{"text": f"Good morning, this is test {i % 10}."} for i in range(n)],
         _raw_speech),
]


def measure(case: Case, models: Any, repeats: int, batch: int) -> dict[str, float]:
    from polymodal.tools import model_cache

    tool = case.make_tool(models)
    one = case.inputs(1)[0]

    def cold() -> object:
        model_cache().clear()
        return tool.execute(**one)

    inputs = case.inputs(batch)
    return {
        "cold": median_seconds(cold, max(1, repeats // 2), warm=False),
        "warm": median_seconds(lambda: tool.execute(**one), repeats, warm=True),
        "batched": median_seconds(lambda: tool.execute_batch(inputs), repeats, warm=True),
        "one_by_one": median_seconds(lambda: [tool.execute(**item) for item in inputs], repeats, warm=True),
        "raw": median_seconds(case.raw(models, one), repeats, warm=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    import torch
    from support.tiny_models import TinyModels

    torch.set_num_threads(1)
    models = TinyModels(Path(tempfile.mkdtemp(prefix="polymodal-bench-")) / "models")
    print(f"{'tool':<20}{'cold s':>9}{'warm s':>9}{'cold/warm':>10}"
          f"{f'batch{args.batch} s':>10}{'1-by-1 s':>10}{'1by1/batch':>11}{'raw s':>9}{'tool/raw':>9}")
    for case in CASES:
        m = measure(case, models, args.repeats, args.batch)
        print(f"{case.name:<20}{m['cold']:>9.3f}{m['warm']:>9.4f}{m['cold'] / m['warm']:>10.1f}"
              f"{m['batched']:>10.4f}{m['one_by_one']:>10.4f}{m['one_by_one'] / m['batched']:>11.2f}"
              f"{m['raw']:>9.4f}{m['warm'] / m['raw']:>9.2f}")


if __name__ == "__main__":
    main()
