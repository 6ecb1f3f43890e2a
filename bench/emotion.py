"""Emotion in a video call: the face path's speed on the CPU, and memory flat in the call's length.

1. **Face path, frames per second.** On a generated 640x360 call with two faces (scikit-image's
   astronaut, true and swapped colours): decoding alone (every frame), then per *sampled* frame
   the Haar detection + tracking + cropping, then classifying the crops with the tiny test ViT
   and with a randomly initialised ViT of the real default model's shape (ViT-B/16 at 224 px, as
   ``trpakov/vit-face-expression``). The face path's rate is frames per second through detection
   and classification together (one forward per batch of ``--batch`` frames' crops).
2. **Peak RSS, 1-minute vs 10-minute call**, each in a fresh process: the whole tool (tiny tuned
   voice and face classifiers, 8 s windows, 4 frames per window) on a 640x360 15 fps call with
   sound, whose mood alternates every 40 s. Each run's timeline is checked against the script of
   the call (happy/angry spans at the expected times), so a flat memory curve never comes from
   doing less.

Peak RSS is read from ``/proc/self/status`` (VmHWM), which starts afresh in the child; ``ru_maxrss``
would carry the parent's peak across ``exec``.

Run: ``python bench/emotion.py [--frames 60] [--batch 8] [--threads 0] [--skip-rss] [--skip-base]``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401 - the offline environment, and the test bed's support package on the path

SIZE = (640, 360)
FPS = 15
SHOT = 40.0  # seconds per calm/upset stretch: a multiple of the 8 s window, so spans are exact
CALM, UPSET = 220.0, 1760.0


def make_call(folder: Path, seconds: int, name: str) -> Path:
    """Alternating calm/upset stretches: one face, true colours + low tone, then swapped + high tone."""
    from support.face_media import Placement, Shot, astronaut_head, call_video

    calm, upset = astronaut_head(180), astronaut_head(180, "bgr")
    shots, left, i = [], float(seconds), 0
    while left > 0:
        length = min(SHOT, left)
        face, freq = (calm, CALM) if i % 2 == 0 else (upset, UPSET)
        shots.append(Shot(length, (Placement(face, (150, 60), (300, 100)),), freq))
        left -= length
        i += 1
    return call_video(folder, shots, name=name, size=SIZE, fps=FPS)


def expected_spans(seconds: int) -> list[tuple[float, float, str]]:
    spans, start, i = [], 0.0, 0
    while start < seconds:
        end = min(start + SHOT, float(seconds))
        spans.append((start, end, "happy" if i % 2 == 0 else "angry"))
        start, i = end, i + 1
    return spans


def build_base_vit(root: Path) -> Path:
    """A random ViT-B/16 image classifier at 224 px with the tiny models' four emotion labels."""
    import torch
    from support.tiny_models import EMOTION_LABELS
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    torch.manual_seed(0)
    config = ViTConfig(image_size=224, patch_size=16, id2label=dict(EMOTION_LABELS),
                       label2id={v: k for k, v in EMOTION_LABELS.items()})
    out = root / "vit-base-random"
    ViTForImageClassification(config).eval().save_pretrained(out)
    ViTImageProcessorPil(size={"height": 224, "width": 224}).save_pretrained(out)
    return out


def two_face_call(folder: Path, seconds: float) -> Path:
    from support.face_media import Placement, Shot, astronaut_head, call_video

    left, right = astronaut_head(180), astronaut_head(180, "bgr")
    shot = Shot(seconds, (Placement(left, (40, 60), (120, 80)), Placement(right, (420, 60), (340, 100))), CALM)
    return call_video(folder, [shot], name="two.mp4", size=SIZE, fps=FPS)


def face_path(args: argparse.Namespace, work: Path, models: Any) -> None:
    from PIL import Image

    from polymodal import Attachment
    from polymodal.tools import EmotionRecognizer, HaarFaceDetector
    from polymodal.tools.builtin.emotion.call_windows import FaceSettings, WindowInput, faces_in
    from polymodal.tools.builtin.keyframes import Sampling, frames_at, iter_frames

    video = Attachment.from_path(two_face_call(work, args.frames / 2 + 1))
    times = [0.25 + 0.5 * i for i in range(args.frames)]  # two sampled frames per second

    def decode_all() -> int:
        return sum(1 for _ in iter_frames(video, Sampling()))

    def sampled() -> list[Image.Image]:
        return [frame.to_image() for _, frame in frames_at(video, times, Sampling())]

    frames = sampled()
    assert len(frames) == args.frames, len(frames)
    decoded = decode_all()

    def detect() -> list[tuple[list[Image.Image], list[str]]]:
        faces = FaceSettings(HaarFaceDetector())
        return [faces_in(image, t, faces) for t, image in zip(times, frames, strict=True)]

    found = detect()
    assert all(sorted(names) == ["face 1", "face 2"] for _, names in found), "two faces in every frame"
    windows = [WindowInput("bench", 0.0, 1.0, None, crops, names, 1) for crops, names in found]
    print(f"{'face path, 640x360, 2 faces per frame':<46}{'frames':>8}{'wall s':>9}{'frames/s':>10}"
          f"{'CPU s':>9}{'frames/CPU s':>14}")
    _row("decode every frame (PyAV)", decoded, decode_all, args.repeats)
    _row("decode + pick sampled frames", args.frames, sampled, args.repeats)
    t_detect = _row("detect + track + crop (Haar)", args.frames, detect, args.repeats)
    classifiers = [("tiny ViT (test bed)", models.path("face-emotion"))]
    if not args.skip_base:
        classifiers.append(("ViT-B/16 224 px", build_base_vit(work)))
    for label, folder in classifiers:
        tool = EmotionRecognizer(model=str(models.path("audio-emotion")), face_model=str(folder), device="cpu")
        bundle = tool.bundle()

        def classify(tool: Any = tool, bundle: Any = bundle) -> list[Any]:
            out = []
            for start in range(0, len(windows), args.batch):
                out += tool._run_chunk(bundle, windows[start : start + args.batch])
            return out

        results = classify()
        assert all(sorted(r.artifact.faces) == ["face 1", "face 2"] for r in results)
        t_classify = _row("classify crops, " + label, args.frames, classify, args.repeats)
        wall, cpu = t_detect[0] + t_classify[0], t_detect[1] + t_classify[1]
        print(f"{'  face path: detect + classify':<46}{args.frames:>8}{wall:>9.3f}{args.frames / wall:>10.1f}"
              f"{cpu:>9.3f}{args.frames / cpu:>14.1f}")


def _row(label: str, frames: int, fn: Any, repeats: int) -> tuple[float, float]:
    """Print one timed row: median wall seconds, and CPU seconds of this process (less swayed by a busy machine)."""
    walls, cpus = [], []
    for _ in range(max(1, repeats)):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"{label:<46}{frames:>8}{wall:>9.3f}{frames / wall:>10.1f}{cpu:>9.3f}{frames / cpu:>14.1f}")
    return wall, cpu


def rss_child(video: str, audio_model: str, face_model: str, seconds: int) -> None:
    """Run the tool on one call; print windows, wall seconds and peak RSS in KiB after checking the timeline."""
    from polymodal import Attachment
    from polymodal.tools import EmotionRecognizer

    tool = EmotionRecognizer(model=audio_model, face_model=face_model, device="cpu")
    started = time.perf_counter()
    scores = tool.execute(video=Attachment.from_path(video)).artifact
    wall = time.perf_counter() - started
    fused = [(s.start, s.end, s.label) for s in scores.timeline if s.who == "fused"]
    if fused != expected_spans(seconds):
        print(f"timeline mismatch: {fused}", file=sys.stderr)
        sys.exit(1)
    print(len(scores.windows), f"{wall:.2f}", peak_kib())


def peak_kib() -> int:
    """This process's peak RSS in KiB: VmHWM, which starts afresh at exec (Linux).

    ``ru_maxrss`` is kept across ``execve``, so a child started by a parent holding a big model
    would report the parent's peak instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss(work: Path, seconds: int, models: Any, threads: int) -> tuple[int, float, float]:
    path = make_call(work, seconds, f"call{seconds}.mp4")
    cmd = [sys.executable, __file__, "--rss-child", str(path), str(models.path("audio-emotion-tuned")),
           str(models.path("face-emotion-tuned")), str(seconds), str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"child failed for {seconds} s:\n{done.stderr[-2000:]}")
    windows, wall, rss = done.stdout.split()[-3:]
    return int(windows), float(wall), int(rss) / 1024


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--rss-child":
        import torch

        torch.set_num_threads(int(sys.argv[6]))
        rss_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="sampled frames timed in the face path")
    parser.add_argument("--batch", type=int, default=8, help="frames' crops per classifier forward")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all)")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-base", action="store_true", help="leave out the ViT-B/16-shaped classifier")
    args = parser.parse_args()

    import torch
    from support.tiny_models import TinyModels

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="polymodal-bench-emotion-") as folder:  # calls and models: removed
        work = Path(folder)
        models = TinyModels(work / "models")
        print(f"CPU, {torch.get_num_threads()} torch threads\n")
        face_path(args, work, models)
        if args.skip_rss:
            return
        print(f"\n{'whole call (tiny tuned models), 640x360 15 fps':<46}{'windows':>8}{'wall s':>10}{'x realtime':>11}"
              f"{'peak RSS MiB':>14}")
        for seconds in (60, 600):
            windows, wall, rss = peak_rss(work, seconds, models, torch.get_num_threads())
            row = f"{seconds // 60} min, timeline checked"
            print(f"{row:<46}{windows:>8}{wall:>10.1f}{seconds / wall:>11.1f}{rss:>14.1f}")

if __name__ == "__main__":
    main()
