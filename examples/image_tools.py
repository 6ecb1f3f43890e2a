"""Read, match and question one image with the OCR, CLIP and visual-QA tools, side by side.

    python examples/image_tools.py PHOTO --labels "a sign,a cat,a beach" --question "what colour is it?"
        [--clip MODEL] [--vqa MODEL]

OCR runs rapidocr's packaged PP-OCR models (``pip install 'polymodal[ocr]'``, no download). MODEL is
a hub id or a local folder. Several ``--question`` flags are answered in one batched call.
"""

from __future__ import annotations

import argparse

from polymodal import Attachment
from polymodal.tools import OCR, ClipMatcher, VisualQA


def main() -> None:
    parser = argparse.ArgumentParser(description="OCR, CLIP matching and visual QA on one image")
    parser.add_argument("photo")
    parser.add_argument("--labels", default="a photo of text,a photo of an animal,a landscape")
    parser.add_argument("--question", action="append", default=[])
    parser.add_argument("--clip", default="openai/clip-vit-base-patch32")
    parser.add_argument("--vqa", default="Salesforce/blip-vqa-base")
    args = parser.parse_args()

    photo = Attachment.from_path(args.photo)
    print("text:", OCR().execute(image=photo).content)
    scores = ClipMatcher(model=args.clip).execute(images=[photo], labels=args.labels.split(","), template="{}")
    print("labels:", scores.content)
    if args.question:
        answers = VisualQA(model=args.vqa).execute(image=photo, questions=args.question).artifact
        for pair in answers.pairs:
            print(f"Q: {pair.question}  A: {pair.answer}")


if __name__ == "__main__":
    main()
