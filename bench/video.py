"""Video summarizer costs, measured side by side.

1. Captioning N keyframes: one batched ``execute_batch`` call vs one call per frame, same model,
   same images, same generation length; the captions of both sides are checked equal first (exit 1
   otherwise). Ratio = per-frame / batched, the median over interleaved repeats with its range.
   With ``tiny`` the ratio is Python overhead saved; ``base`` is real-size compute.
2. Peak RSS of a whole summary (keyframes + captions + the sound track transcribed) of a 10 s and
   a 60 s generated 640x360 video, each in a fresh process. Streaming decode should make them
   about equal: the frames are never held, only one caption batch of keyframes. Each run is checked
   to have scanned every frame of its video (a flat RSS must not come from stopping early).

Run: ``python bench/video.py [--size tiny|base] [--frames 16] [--repeats 3] [--device cpu|cuda]``.
``tiny`` is the test bed's tiny BLIP; ``base`` is a randomly initialised BLIP with the real
base model's shape (ViT-B/16 at 384 px, 12-layer BERT decoder), so the compute is real without
a model hub. Whisper is always the tiny test checkpoint (the RSS numbers compare lengths, not models).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from pathlib import Path

from common import Spread, build_base_blip, paired, require_equal, work_folder

COLOURS = [(255, 0, 0), (0, 160, 0), (0, 0, 255), (255, 255, 255), (30, 30, 30), (200, 200, 0),
           (0, 200, 200), (200, 0, 200)]




def captioning(args: argparse.Namespace, work: Path, blip: str) -> tuple[Spread, Spread, Spread]:
    from support.media_files import video_file

    from polymodal import Attachment
    from polymodal.tools import Captioner
    from polymodal.tools.builtin.keyframes import KeyframeSettings, Sampling, iter_keyframes

    scenes = [(COLOURS[i % len(COLOURS)], 1.0) for i in range(args.frames)]
    clip = Attachment.from_path(video_file(work, "frames.mp4", scenes=scenes, fps=10, size=(640, 360)))
    settings = KeyframeSettings(min_interval=0.5, max_keyframes=args.frames)
    images = [Attachment.from_image(k.image, name=f"k{i}.png")
              for i, k in enumerate(iter_keyframes(clip, settings, Sampling()))]
    assert len(images) == args.frames, len(images)
    captioner = Captioner(model=blip, max_new_tokens=args.tokens, batch_size=args.frames, device=args.device)

    def batched() -> list[str]:
        return [o.content for o in captioner.execute_batch([{"image": im} for im in images])]

    def per_frame() -> list[str]:
        return [captioner.execute(image=im).content for im in images]

    require_equal("captions: batched vs one call per frame", batched(), per_frame())
    return paired(per_frame, batched, args.repeats)


def rss_child(video: str, blip: str, whisper: str, device: str | None) -> None:
    """Summarize one video, then print keyframes, frames scanned and peak RSS in KiB."""
    from polymodal import Attachment
    from polymodal.tools import Captioner, Transcriber, VideoSummarizer

    summarizer = VideoSummarizer(captioner=Captioner(model=blip, max_new_tokens=8, device=device),
                                 transcriber=Transcriber(model=whisper, max_new_tokens=8, device=device))
    timeline = summarizer.summarize(Attachment.from_path(video))
    print(len(timeline.segments), timeline.frames_scanned, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss(work: Path, seconds: int, blip: str, whisper: str, device: str | None) -> tuple[int, int, float]:
    from support.media_files import video_file

    fps = 25
    scenes = [(COLOURS[i % len(COLOURS)], 5.0) for i in range(seconds // 5)]
    path = video_file(work, f"clip{seconds}.mp4", scenes=scenes, fps=fps, size=(640, 360), audio="tone")
    cmd = [sys.executable, __file__, "--rss-child", str(path), blip, whisper, device or ""]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    keyframes, frames = int(out[0]), int(out[1])
    require_equal(f"{seconds} s video: frames scanned", frames, seconds * fps)
    return keyframes, frames, int(out[2]) / 1024


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--rss-child":
        rss_child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] or None)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the cache picks)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: 1 for tiny)")
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()

    import torch

    threads = args.threads or (1 if args.size == "tiny" else torch.get_num_threads())
    torch.set_num_threads(threads)  # tiny models run 10-100x faster on one thread (OFFLINE.md)
    with work_folder("polymodal-bench-video-") as work:
        report(args, work)


def report(args: argparse.Namespace, work: Path) -> None:
    import torch
    from support.tiny_models import TinyModels

    models = TinyModels(work / "models")
    blip = str(build_base_blip(work) if args.size == "base" else models.path("blip-caption"))
    whisper = str(models.path("whisper-asr"))

    single, batched, ratio = captioning(args, work, blip)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"captioning {args.frames} keyframes, BLIP {args.size}, {args.tokens} new tokens, {device}, "
          f"{torch.get_num_threads()} CPU threads; captions checked equal; "
          f"medians of {args.repeats} interleaved repeats")
    print(f"{'measure':<44}{'median s':>10}")
    print(f"{'one call per frame':<44}{single.median:>10.4f}")
    print(f"{'one batched call':<44}{batched.median:>10.4f}")
    print(f"{'  ratio per-frame / batched (range)':<44}{str(ratio):>20}")
    if args.skip_rss:
        return
    print(f"\n{'whole summary (tiny BLIP + tiny Whisper)':<34}{'keyframes':>10}{'frames':>8}{'peak RSS MiB':>14}")
    for seconds in (10, 60):
        keyframes, frames, rss = peak_rss(work, seconds, str(models.path("blip-caption")), whisper, args.device)
        print(f"{f'{seconds} s 640x360 25 fps with sound':<34}{keyframes:>10}{frames:>8}{rss:>14.1f}")


if __name__ == "__main__":
    main()
