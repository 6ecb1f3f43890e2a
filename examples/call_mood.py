"""Follow the mood of a video call: faces found and tracked, the voice per window, fused, over time.

    python examples/call_mood.py [CALL.mp4] [--window 8] [--voice MODEL] [--face MODEL] [--head FOLDER]

MODEL is a hub id or a local folder (defaults: superb/wav2vec2-base-superb-er for the voice,
trpakov/vit-face-expression for faces; no PyPI wheel ships them, so with no hub the script stops at
once with one line naming the model to provide). CALL defaults to examples/media/sign-and-voice.mp4.
Needs the ``faces`` extra (OpenCV's Haar cascade).
Prints the overall mood and its changes, then one line per timeline row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from polymodal import Attachment, PolymodalError
from polymodal.tools import EmotionRecognizer, EmotionScores
from polymodal.tools.builtin.emotion.mood import clock

MEDIA = Path(__file__).resolve().parent / "media"


def main() -> None:
    parser = argparse.ArgumentParser(description="the mood of a video call over time")
    parser.add_argument("call", nargs="?", default=str(MEDIA / "sign-and-voice.mp4"))
    parser.add_argument("--window", type=float, default=8.0, help="seconds per window")
    parser.add_argument("--voice", default="superb/wav2vec2-base-superb-er")
    parser.add_argument("--face", default="trpakov/vit-face-expression")
    parser.add_argument("--head", default=None, help="folder of a trained FusionHead")
    args = parser.parse_args()

    recognizer = EmotionRecognizer(model=args.voice, face_model=args.face, window=args.window, head=args.head)
    out = recognizer.execute(video=Attachment.from_path(args.call))
    scores: EmotionScores = out.artifact
    print(out.content)
    print(f"\noverall: {scores.overall.label}")
    for span in scores.timeline:  # start, end, who, label, probabilities
        top = ", ".join(f"{label} {p:.2f}" for label, p in list(span.probabilities.items())[:2])
        print(f"{clock(span.start)}-{clock(span.end)}  {span.who:<8} {span.label:<16} {top}")


if __name__ == "__main__":
    try:
        main()
    except PolymodalError as exc:
        sys.exit(f"error: {exc}")
