"""Summarize a video: keyframes at scene changes captioned, the sound track transcribed, one timeline.

    python examples/video_summary.py VIDEO [--focus TEXT] [--at SECONDS] [--captioner MODEL] [--transcriber MODEL]

MODEL is a hub id or a local folder. Without an LLM the summary is extractive (the distinct scenes
and the transcript); give ``Agent(llm=...)`` a LangChain chat model and the agent lends it to the
summarizer, which map-reduces long timelines. ``--at`` also captions the frame at that moment.
"""

from __future__ import annotations

import argparse

from polymodal import Attachment, Timeline, VideoSummarizer
from polymodal.tools import Captioner, FrameGrabber, Transcriber


def main() -> None:
    parser = argparse.ArgumentParser(description="summarize a video into a timestamped timeline")
    parser.add_argument("video")
    parser.add_argument("--focus", default=None, help="what to look for, e.g. 'what is said about pricing?'")
    parser.add_argument("--at", default=None, help="also caption the frame at this time (42 or 0:42)")
    parser.add_argument("--captioner", default="Salesforce/blip-image-captioning-base")
    parser.add_argument("--transcriber", default="openai/whisper-base")
    args = parser.parse_args()

    captioner = Captioner(model=args.captioner)
    summarizer = VideoSummarizer(captioner=captioner, transcriber=Transcriber(model=args.transcriber))
    video = Attachment.from_path(args.video)
    out = summarizer.execute(video=video, focus=args.focus)
    timeline: Timeline = out.artifact
    print(out.content)
    print(f"\n{timeline.frames_scanned} frames scanned, {len(timeline.segments)} keyframes captioned")
    if args.at is not None:
        from polymodal.tools.keyframes import parse_time

        grabbed = FrameGrabber().execute(video=video, at=parse_time(args.at))
        print(f"\n{grabbed.content}: {captioner.execute(image=grabbed.artifact).content}")


if __name__ == "__main__":
    main()
