"""Draw an image, describe it, and read the description aloud: generated media feeding later steps.

    python examples/generate.py ["a lighthouse at night"] [--sd MODEL] [--tts MODEL] [--vocoder MODEL]

Models are hub ids or local folders (`pip install 'polymodal[diffusion]'` for Stable Diffusion); no
PyPI wheel ships these, so on a machine with no hub the script stops at once with one line naming
the model to provide.
The plan is given explicitly here; with an LLM (`Agent(llm=...)`) the planner writes the same plan
from "draw X, describe it and read the description aloud".
"""

from __future__ import annotations

import argparse
import sys

from polymodal import PolymodalError
from polymodal.agent.conversation import Conversation
from polymodal.agent.executor import Executor
from polymodal.agent.plan import Plan
from polymodal.tools import Captioner, ImageGenerator, SpeechSynthesizer


def main() -> int:
    parser = argparse.ArgumentParser(description="draw, describe, and speak")
    parser.add_argument("prompt", nargs="?", default="a lighthouse at night")
    parser.add_argument("--sd", default="stable-diffusion-v1-5/stable-diffusion-v1-5")
    parser.add_argument("--captioner", default="Salesforce/blip-image-captioning-base")
    parser.add_argument("--tts", default="microsoft/speecht5_tts")
    parser.add_argument("--vocoder", default="microsoft/speecht5_hifigan")
    args = parser.parse_args()

    tools = [ImageGenerator(model=args.sd), Captioner(model=args.captioner),
             SpeechSynthesizer(model=args.tts, vocoder=args.vocoder)]
    plan = Plan.model_validate({"steps": [
        {"id": "s1", "tool": "image_generator", "args": {"prompt": args.prompt, "seed": 0}},
        {"id": "s2", "tool": "captioner", "args": {"image": "s1"}},
        {"id": "s3", "tool": "speech_synthesizer", "args": {"text": "{s2}"}},
    ]})
    conversation = Conversation()  # the executor adds the media the steps make, each with its id
    results = Executor({t.name: t for t in tools}).run(plan, conversation)
    for step in results:
        print(f"{step.id} {step.tool}: {step.status} {step.content or ''} {step.artifact_ids}")
    for attachment_id, attachment in conversation.attachments.items():
        path = attachment.save(f"{attachment_id}.{attachment.mime_type.split('/')[1]}")
        print(f"saved {attachment_id} to {path}")
    failed = [step for step in results if step.status != "ok"]
    if failed:  # the first failure is the cause; later steps were skipped for want of its output
        print(f"error: {failed[0].error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PolymodalError as exc:
        sys.exit(f"error: {exc}")
