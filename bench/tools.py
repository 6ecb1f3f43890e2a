"""Per tool, on the test bed's tiny models: what batching buys, and what the first load costs.

For each case:

- ``cold``: the first call of a fresh process-wide cache (load + one input);
- ``warm``: the median of later single calls (model already loaded);
- ``1-by-1``: N inputs as N separate calls; ``batched``: the same N inputs as one ``execute_batch``
  (or, for visual_qa's ``questions`` case, one call carrying N questions);
- ``ratio``: 1-by-1 / batched, i.e. the throughput gain of batching (1.0: none), the median over
  interleaved repeats with its range (the two sides run alternately, so load drift hits both).

Outputs are checked equal before timing (batched == one-by-one, answers of N questions in one call
== the N single answers) and the script stops with exit 1 when they differ: a speed-up never comes
from doing something else. These are tiny models: the ratios measure Python and per-call overhead
that batching saves, not model compute (see bench/video.py --size base for real-size compute).
Cases are a plain list (:data:`CASES`): add a tool by appending a :class:`Case`.

Run: ``python bench/tools.py [--repeats 5] [--n 8] [--only clip_matcher]``. Needs no model hub:
the tiny checkpoints are built into a temporary folder (OCR uses rapidocr's packaged models).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import median_seconds, paired, require_equal, texts, work_folder

os.environ.setdefault("OMP_NUM_THREADS", "1")
if "XDG_CACHE_HOME" not in os.environ:  # onnxruntime writes there when imported: a folder removed at exit
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="polymodal-bench-cache-")
    atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)

from polymodal.tools import OCR, Captioner, ClipMatcher, EmotionRecognizer, Transcriber, VisualQA  # noqa: E402

Inputs = list[dict[str, Any]]


@dataclass
class Case:
    """One benchmarked tool configuration.

    Attributes:
        name: the row label.
        tool: builds the tool from the tiny-model registry.
        inputs: builds the N inputs of the batched call, given (work folder, N).
        singles: builds the N one-by-one inputs when they differ from ``inputs`` (default: the same).
    """

    name: str
    tool: Callable[[Any], Any]
    inputs: Callable[[Path, int], Inputs]
    singles: Callable[[Path, int], Inputs] | None = None


def _images(work: Path, n: int) -> list[Any]:
    from support.media_files import png_image

    from polymodal import Attachment

    return [Attachment.from_path(png_image(work, f"img{i}.png", color=(30 * i % 256, 80, 200 - 20 * i % 200)))
            for i in range(n)]


def _tones(work: Path, n: int, seconds: float = 1.0) -> list[Any]:
    from support.media_files import wav_file

    from polymodal import Attachment

    return [Attachment.from_path(wav_file(work, f"tone{i}.wav", seconds=seconds, freq=220.0 * (i + 1)))
            for i in range(n)]


def _texts(work: Path, n: int) -> list[Any]:
    from support.media_files import text_image

    from polymodal import Attachment

    return [Attachment.from_path(text_image(work, f"SIGN {i}", f"text{i}.png", font_size=28)) for i in range(n)]


QUESTIONS = ["what colour is it?", "how many are there?", "is it big?", "where is it?", "what is it?",
             "is it outside?", "is it a photo?", "who made it?", "what shape?", "is it new?"]


def _tiny(name: str) -> Callable[[Any], str]:
    return lambda models: str(models.path(name))


CASES: list[Case] = [
    Case("captioner (blip)", lambda m: Captioner(model=_tiny("blip-caption")(m), max_new_tokens=10),
         lambda w, n: [{"image": img} for img in _images(w, n)]),
    Case("transcriber (whisper, 1 s)", lambda m: Transcriber(model=_tiny("whisper-asr")(m), max_new_tokens=10),
         lambda w, n: [{"audio": a} for a in _tones(w, n)]),
    Case("visual_qa (blip vqa, N images)", lambda m: VisualQA(model=_tiny("blip-vqa")(m), max_new_tokens=5),
         lambda w, n: [{"image": img, "question": "what colour is it?"} for img in _images(w, n)]),
    Case("visual_qa (blip vqa, N questions)", lambda m: VisualQA(model=_tiny("blip-vqa")(m), max_new_tokens=5),
         lambda w, n: [{"image": _images(w, 1)[0], "questions": (QUESTIONS * n)[:n]}],
         singles=lambda w, n: [{"image": _images(w, 1)[0], "question": q} for q in (QUESTIONS * n)[:n]]),
    Case("visual_qa (blip-2 opt)", lambda m: VisualQA(model=_tiny("blip2-opt")(m), max_new_tokens=5),
         lambda w, n: [{"image": img, "question": "what colour is it?"} for img in _images(w, n)]),
    Case("visual_qa (idefics3 chat VLM)", lambda m: VisualQA(model=_tiny("idefics3-chat")(m), max_new_tokens=5),
         lambda w, n: [{"image": img, "question": "what colour is it?"} for img in _images(w, n)]),
    Case("clip_matcher (clip, 4 labels)", lambda m: ClipMatcher(model=_tiny("clip")(m)),
         lambda w, n: [{"images": [img], "labels": ["red", "green", "blue", "a cat"]} for img in _images(w, n)]),
    Case("ocr (PP-OCR, packaged)", lambda m: OCR(),
         lambda w, n: [{"image": img} for img in _texts(w, n)]),
    Case("emotion (voice + face)",
         lambda m: EmotionRecognizer(model=_tiny("audio-emotion")(m), face_model=_tiny("face-emotion")(m)),
         lambda w, n: [{"audio": a, "image": img} for a, img in zip(_tones(w, n), _images(w, n), strict=True)]),
]
"""The benchmarked tools, in order: append a Case to add one (e.g. image generation, speech synthesis)."""




def outputs_of(case: Case, results: list[Any]) -> list[str]:
    """What the two sides are compared on: each answer (the N-questions call holds N of them)."""
    if case.singles is not None:
        return [answer for result in results for answer in result.artifact.answers]
    return texts(results)


def run_case(case: Case, models: Any, work: Path, n: int, repeats: int) -> dict[str, Any]:
    """Time one case; returns cold and warm seconds, and one-by-one vs batched with the ratio's spread."""
    from polymodal.tools import model_cache

    folder = work / case.name.split()[0]
    folder.mkdir(exist_ok=True)
    tool = case.tool(models)
    batch = case.inputs(folder, n)
    singles = case.singles(folder, n) if case.singles else batch
    model_cache().clear()
    started = time.perf_counter()
    tool.execute(**singles[0])
    cold = time.perf_counter() - started
    warm = median_seconds(lambda: tool.execute(**singles[0]), repeats)
    require_equal(f"{case.name}: batched vs one-by-one", outputs_of(case, tool.execute_batch(batch)),
                  texts([tool.execute(**item) for item in singles]))
    one_by_one, batched, ratio = paired(lambda: [tool.execute(**item) for item in singles],
                                        lambda: tool.execute_batch(batch), repeats)
    return {"cold": cold, "warm": warm, "one_by_one": one_by_one.median, "batched": batched.median, "ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=8, help="inputs per batch")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args()

    import torch
    from support.tiny_models import TinyModels

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    cases = [c for c in CASES if args.only in c.name]
    print(f"N = {args.n} inputs per batch, tiny models, {torch.get_num_threads()} torch thread(s); "
          f"medians of {args.repeats} interleaved repeats, ratio range in brackets; outputs checked equal first")
    print(f"{'tool':<36}{'cold s':>9}{'warm s':>9}{'1-by-1 s':>10}{'batched s':>10}{'ratio':>19}")
    with work_folder() as work:
        models = TinyModels(work / "models")
        for case in cases:
            r = run_case(case, models, work, args.n, args.repeats)
            print(f"{case.name:<36}{r['cold']:>9.3f}{r['warm']:>9.4f}{r['one_by_one']:>10.4f}"
                  f"{r['batched']:>10.4f}{str(r['ratio']):>19}", flush=True)


if __name__ == "__main__":
    main()
