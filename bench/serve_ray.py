"""What Ray Serve costs on one small machine: ``polymodal serve`` vs ``serve --ray`` with 1 and 2 replicas.

The same agent (the tiny random BLIP captioner, no LLM) behind the same app answers the same
request (a 32x32 PNG, "describe this photo") three ways, one after the other on one machine:

- uvicorn: ``create_app`` under uvicorn in a subprocess, as ``polymodal serve`` runs it;
- ray-1 / ray-2: :func:`polymodal.serving.ray_serve.deploy` with 1 and 2 replicas on a local Ray
  (2 CPUs, no dashboard), requests through Ray Serve's HTTP proxy.

Printed per side and concurrency: requests per second and p50/p95 latency, and the resident memory
of everything the side runs (the uvicorn process; or every Ray process: raylet, GCS, controller,
proxy, replicas). On 2 cores the model's compute is the bound, so replicas add latency (the proxy
hop) and memory (a copy of the models each) and buy throughput only where cores are idle.

    python bench/serve_ray.py [--requests 48] [--levels 1 8]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common  # noqa: F401 - offline environment and the tests' support package on the path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def request_body() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return json.dumps({"model": "polymodal", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe this photo"}, {"type": "image_url", "image_url": {"url": url}}]}]}).encode()


def measure(url: str, body: bytes, requests: int, concurrency: int) -> tuple[list[float], float]:
    import httpx

    client = httpx.Client(timeout=300)

    def one(_: int) -> float:
        started = time.perf_counter()
        response = client.post(url + "/v1/chat/completions", content=body,
                               headers={"content-type": "application/json"})
        response.raise_for_status()
        return time.perf_counter() - started

    for _ in range(concurrency):  # warm every replica's model and the connections
        one(0)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    client.close()
    return latencies, wall


def rss_mib(pids: list[int]) -> float:
    import psutil

    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return total / 2**20


def ray_pids() -> list[int]:
    import psutil

    me = psutil.Process()
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if p.pid != me.pid and any("ray" in part for part in (p.info["cmdline"] or [])[:3])]


def wait_healthy(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"nothing answered at {url}")


def report(side: str, level: int, latencies: list[float], wall: float, rss: float) -> None:
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    print(f"{side:>8} {level:>5} {len(latencies) / wall:8.1f} {q[49] * 1000:8.1f} {q[94] * 1000:8.1f} {rss:10.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=48, help="requests per side and concurrency level")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8], help="concurrency levels")
    args = parser.parse_args()

    from support.batch_agents import tiny_captioner_agent
    from support.server import free_port
    from support.tiny_models import TinyModels

    blip = str(TinyModels(Path(tempfile.mkdtemp(prefix="polymodal-bench-ray-"))).path("blip-caption"))
    body = request_body()
    print(f"{'side':>8} {'conc':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'RSS MiB':>10}")

    port = free_port()
    code = ("import sys, uvicorn; sys.path.insert(0, 'tests'); from support.batch_agents import tiny_captioner_agent; "
            "from polymodal.serving import ServeSettings, create_app; "
            f"uvicorn.run(create_app(tiny_captioner_agent({blip!r}), ServeSettings(ui=False, max_queue=1024)), "
            f"host='127.0.0.1', port={port}, log_level='warning')")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=common.ROOT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        for level in args.levels:
            latencies, wall = measure(f"http://127.0.0.1:{port}", body, args.requests, level)
            report("uvicorn", level, latencies, wall, rss_mib([process.pid]))
    finally:
        process.terminate()
        process.wait(30)

    import ray

    from polymodal.serving import ServeSettings
    from polymodal.serving.ray_serve import RayServeOptions, deploy

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(common.ROOT / "tests"), str(common.ROOT)])}})
    factory: Callable[[], object] = functools.partial(tiny_captioner_agent, blip)
    for replicas in (1, 2):
        deployment = deploy(factory, ServeSettings(ui=False, max_queue=1024),  # type: ignore[arg-type]
                            RayServeOptions(replicas=replicas, port=free_port(), replica_cpus=0.5))
        try:
            wait_healthy(deployment.url)
            for level in args.levels:
                latencies, wall = measure(deployment.url, body, args.requests, level)
                report(f"ray-{replicas}", level, latencies, wall, rss_mib(ray_pids()))
        finally:
            deployment.close()
    ray.shutdown()


if __name__ == "__main__":
    main()
