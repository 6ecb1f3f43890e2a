"""What each host costs, side by side (polymodal.runtime.hosts): in-process vs worker process vs Ray actor.

1. **Per call.** One tiny-BLIP caption through ``Captioner.execute`` on each host, models loaded
   and workers started before timing; rounds alternate between hosts so that machine load hits all
   alike. Reported: median ms per call and the overhead above in-process. Outputs checked equal.
2. **Moving arrays.** A 30 s clip of 16 kHz float32 audio (1.9 MB) sent over a socket pair and
   back, the way the process host moves inputs and outputs: pickle protocol 5 with out-of-band
   buffers (what the host does) vs plain in-band pickling (one more copy each way).
3. **Batch throughput.** N tiny-Whisper jobs through ``run_batch``: threads in this process vs two
   Ray actors on a local Ray. On a 2-core machine Ray mostly adds cost (its processes compete for
   the same cores); the figure says how much, not that it wins here.

Run: ``python bench/hosts.py [--calls 40] [--jobs 40] [--skip ray]``. No model hub needed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import socket
import statistics
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import common  # noqa: F401 - the offline environment and the test bed's support package

os.environ.setdefault("OMP_NUM_THREADS", "1")


def per_call(model: str, image_path: Path, calls: int, hosts: list[str]) -> dict[str, float]:
    from polymodal import Attachment
    from polymodal.tools import Captioner

    image = Attachment.from_path(image_path)
    tools = {host: Captioner(model=model, max_new_tokens=8, host=host, micro_batching=False) for host in hosts}
    outputs = {host: tool.execute(image=image).content for host, tool in tools.items()}  # load and start
    if len(set(outputs.values())) != 1:
        raise SystemExit(f"hosts answered differently: {outputs}")
    samples: dict[str, list[float]] = {host: [] for host in hosts}
    for _ in range(calls):
        for host, tool in tools.items():
            started = time.perf_counter()
            tool.execute(image=image)
            samples[host].append(time.perf_counter() - started)
    return {host: statistics.median(times) * 1000 for host, times in samples.items()}


def moving_arrays(repeats: int = 20) -> dict[str, float]:
    import numpy as np

    from polymodal.runtime.hosts.wire import receive, send

    clip = np.random.default_rng(0).standard_normal(30 * 16_000).astype(np.float32)

    def echo_time(out_of_band: bool) -> float:
        a, b = socket.socketpair()
        left, right = Connection(a.detach()), Connection(b.detach())

        def echo() -> None:
            for _ in range(repeats + 1):
                if out_of_band:
                    send(right, receive(right))
                else:
                    right.send(right.recv())

        thread = threading.Thread(target=echo, daemon=True)
        thread.start()
        times = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            if out_of_band:
                send(left, {"samples": clip})
                back = receive(left)
            else:
                left.send({"samples": clip})
                back = left.recv()
            times.append(time.perf_counter() - started)
            if not np.array_equal(back["samples"], clip):
                raise SystemExit("the clip came back changed")
        thread.join()
        left.close()
        right.close()
        return statistics.median(times[1:]) * 1000

    return {"out_of_band_ms": echo_time(True), "in_band_ms": echo_time(False)}


def batch_throughput(whisper: str, work: Path, jobs_count: int) -> dict[str, float]:
    from support.batch_agents import tiny_transcriber_agent
    from support.media_files import wav_file

    from polymodal.batch import run_batch
    from polymodal.ray_batch import RayOptions

    tone = wav_file(work, seconds=1.0)
    jobs = work / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"id": f"j{i}", "prompt": "transcribe", "attachments": [str(tone)]}) + "\n"
                            for i in range(jobs_count)))
    factory = functools.partial(tiny_transcriber_agent, whisper)

    def timed(name: str, **kwargs: Any) -> tuple[float, dict[str, str]]:
        output = work / f"{name}.jsonl"
        started = time.perf_counter()
        run_batch(kwargs.pop("agent", None), jobs, output, concurrency=4, **kwargs)
        seconds = time.perf_counter() - started
        return seconds, {r["id"]: r["text"] for r in map(json.loads, output.read_text().splitlines())}

    agent = factory()
    agent.fork().chat("transcribe", [str(tone)])  # load before timing
    t_local, local = timed("local", agent=agent)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(common.ROOT / "tests"),
                                                                      str(common.ROOT)])}})
    try:
        timed("ray-warm", pool=RayOptions(factory, actors=2))  # actors start and load: not the steady state
        t_ray, remote = timed("ray", pool=RayOptions(factory, actors=2))
    finally:
        ray.shutdown()
    if local != remote:
        raise SystemExit("Ray answered differently from the local run")
    return {"jobs": jobs_count, "local_s": t_local, "ray_s": t_ray}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--skip", nargs="*", default=[], choices=["ray", "process", "arrays", "batch"])
    args = parser.parse_args()

    import torch
    from support.media_files import png_image
    from support.tiny_models import TinyModels

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="polymodal-bench-"))
    try:
        models = TinyModels(work / "models")
        hosts = ["inprocess"] + [h for h in ("process", "ray") if h not in args.skip]
        if "ray" in hosts:
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        try:
            times = per_call(str(models.path("blip-caption-varied")), png_image(work), args.calls, hosts)
        finally:
            if "ray" in hosts:
                ray.shutdown()
        for host, ms in times.items():
            extra = "" if host == "inprocess" else f" (+{ms - times['inprocess']:.2f} ms above in-process)"
            print(f"per call, {host:<9}: {ms:7.2f} ms{extra}")
        if "arrays" not in args.skip:
            moved = moving_arrays()
            print(f"30 s audio clip there and back: out-of-band {moved['out_of_band_ms']:.2f} ms vs in-band pickle "
                  f"{moved['in_band_ms']:.2f} ms ({moved['in_band_ms'] / moved['out_of_band_ms']:.2f}x)")
        if "batch" not in args.skip and "ray" not in args.skip:
            result = batch_throughput(str(models.path("whisper-asr")), work, args.jobs)
            print(f"batch of {result['jobs']} jobs, concurrency 4: in-process {result['local_s']:.2f} s vs "
                  f"2 Ray actors {result['ray_s']:.2f} s ({result['local_s'] / result['ray_s']:.2f}x)")
    finally:
        from polymodal.runtime.hosts import host_named

        if "process" not in args.skip:
            host_named("process").shutdown()  # type: ignore[attr-defined]
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
