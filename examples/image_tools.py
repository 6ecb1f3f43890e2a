"""Read, match and question one image with the OCR, CLIP and visual-QA tools, side by side.

    python examples/image_tools.py [PHOTO] --labels "a sign,a cat,a beach" --question "what colour is it?"
        [--clip MODEL] [--vqa MODEL]

OCR runs rapidocr's packaged PP-OCR models (``pip install 'polymodal[ocr]'``, no download). MODEL is
a hub id or a local folder (CLIP and visual QA have no packaged model: with no hub, the script stops
after OCR with one line naming the model to provide). Several ``--question`` flags are answered in
one batched call. PHOTO defaults to examples/media/sign.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from polymodal import Attachment, PolymodalError
from polymodal.tools import OCR, ClipMatcher, VisualQA

MEDIA = Path(__file__).resolve().parent / "media"


def main() -> None:
    parser = argparse.ArgumentParser(description="OCR, CLIP matching and visual QA on one image")
    parser.add_argument("photo", nargs="?", default=str(MEDIA / "sign.png"))
    parser.add_argument("--labels", default="a photo of text,a photo of an animal,a landscape")
    parser.add_argument("--question", action="append", default=[], help="default: what colour is it?")
    parser.add_argument("--clip", default="openai/clip-vit-base-patch32")
    parser.add_argument("--vqa", default="Salesforce/blip-vqa-base")
    args = parser.parse_args()

    photo = Attachment.from_path(args.photo)
    print("text:", OCR().execute(image=photo).content)
    scores = ClipMatcher(model=args.clip).execute(images=[photo], labels=args.labels.split(","), template="{}")
    print("labels:", scores.content)
    questions = args.question or ["what colour is it?"]
    answers = VisualQA(model=args.vqa).execute(image=photo, questions=questions).artifact
    for pair in answers.pairs:
        print(f"Q: {pair.question}  A: {pair.answer}")


if __name__ == "__main__":
    try:
        main()
    except PolymodalError as exc:
        sys.exit(f"error: {exc}")
