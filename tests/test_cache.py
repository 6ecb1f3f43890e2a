"""The shared model cache: one load per model, device and dtype choice, LRU eviction under a budget."""

from __future__ import annotations

import threading

import pytest
import torch

from polymodal.runtime.cache import ModelCache, is_out_of_memory, model_nbytes, pick_device, pick_dtype


def linear_loader(width: int, loads: list[str]):
    def load(device: str, dtype: torch.dtype) -> dict:
        loads.append(device)
        return {"model": torch.nn.Linear(width, width).to(device=device, dtype=dtype)}

    return load


def test_cpu_gets_fp32_and_env_can_force(monkeypatch):
    monkeypatch.delenv("POLYMODAL_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device() == expected and pick_device("cuda:1") == "cuda:1"
    assert pick_dtype("cpu") is torch.float32 and pick_dtype("cuda") is torch.float16
    monkeypatch.setenv("POLYMODAL_DEVICE", "cpu")
    monkeypatch.setenv("POLYMODAL_DTYPE", "bfloat16")
    assert pick_device() == "cpu" and pick_dtype("cpu") is torch.bfloat16


def test_T9_concurrent_first_calls_load_once():
    cache, loads = ModelCache(), []
    barrier = threading.Barrier(4)
    results = []

    def call() -> None:
        barrier.wait()
        results.append(cache.get("m", linear_loader(8, loads), device="cpu"))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == ["cpu"] and all(r is results[0] for r in results) and cache.loads == 1


def test_least_recently_used_is_evicted_when_over_budget():
    one = model_nbytes({"m": torch.nn.Linear(64, 64)})
    cache, loads = ModelCache(budget_bytes=int(2.5 * one)), []
    cache.get("a", linear_loader(64, loads), device="cpu")
    cache.get("b", linear_loader(64, loads), device="cpu")
    cache.get("a", linear_loader(64, loads), device="cpu")  # touch a: b is now the least recently used
    cache.get("c", linear_loader(64, loads), device="cpu")  # 3 models > 2.5 budget: b goes
    assert [key for key, _ in cache.loaded()] == ["a", "c"]
    assert cache.used_bytes("cpu") == 2 * one and len(loads) == 3


def test_free_memory_keeps_only_the_named_model():
    cache, loads = ModelCache(), []
    for key in ("a", "b"):
        cache.get(key, linear_loader(4, loads), device="cpu")
    cache.free_memory(keep="b")
    assert [k for k, _ in cache.loaded()] == ["b"]


def test_out_of_memory_is_recognised_by_message_and_class():
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("oom"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.mark.gpu
def test_gpu_models_go_to_cuda_in_fp16(tiny_models, media):
    from polymodal import Attachment
    from polymodal.tools import Captioner

    captioner = Captioner(model=str(tiny_models.path("blip-caption")), max_new_tokens=4)
    captioner.execute(image=Attachment.from_path(media.png()))
    model = captioner.bundle().model
    assert next(model.parameters()).device.type == "cuda" and next(model.parameters()).dtype is torch.float16


@pytest.mark.gpu
def test_gpu_budget_evicts_the_least_recently_used_model():
    one = model_nbytes({"m": torch.nn.Linear(1024, 1024).half()})
    cache, loads = ModelCache(budget_bytes=int(1.5 * one)), []
    cache.get("a", linear_loader(1024, loads), device="cuda")
    cache.get("b", linear_loader(1024, loads), device="cuda")
    assert [k for k, _ in cache.loaded()] == ["b"]
    assert loads == ["cuda", "cuda"]


@pytest.mark.gpu
def test_T3_cuda_oom_is_retried_then_reported_and_the_process_lives_on(media):
    from polymodal import Attachment, ResourceError
    from polymodal.tools.base import ModelTool, ToolOutput

    class Hog(ModelTool):
        name: str = "hog"
        description: str = "allocates far more than the GPU has"
        model: str = "hog"

        def load(self, device, dtype):
            return {"device": device}

        def encode(self, bundle, prepared):
            return prepared

        def forward(self, bundle, encoded):
            total = torch.cuda.get_device_properties(0).total_memory
            return torch.empty(int(total * 2), dtype=torch.uint8, device="cuda")

        def decode(self, bundle, outputs, prepared):
            return [ToolOutput(content="never")]

    with pytest.raises(ResourceError, match="out of memory"):
        Hog().execute(image=Attachment.from_path(media.png()))
    assert torch.zeros(4, device="cuda").sum().item() == 0  # CUDA still usable


def test_T9_model_calls_per_device_are_bounded_across_concurrent_requests(media):
    """T9: eight requests at once on one tool never run more than the device's slots in forward."""
    import time as _time

    from polymodal import Attachment
    from polymodal.tools.base import ModelTool, ToolOutput

    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    class Busy(ModelTool):
        name: str = "busy"
        description: str = "a model call that takes a while"
        model: str = "busy-model"
        device: str | None = "cpu"

        def load(self, device, dtype):
            return {"model": torch.nn.Linear(2, 2)}

        def encode(self, bundle, prepared):
            return prepared

        def forward(self, bundle, encoded):
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            _time.sleep(0.1)
            with lock:
                state["now"] -= 1
            return encoded

        def decode(self, bundle, outputs, prepared):
            return [ToolOutput(content="done") for _ in prepared]

    def eight_at_once(tool: Busy) -> None:
        image = Attachment.from_path(media.png())
        threads = [threading.Thread(target=tool.execute, kwargs={"image": image}) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    eight_at_once(Busy(micro_batching=False))  # every call its own forward: only the device slots bound them
    assert state["peak"] == 2  # POLYMODAL_DEVICE_CONCURRENCY's default
    state["peak"] = 0
    eight_at_once(Busy(model="busy-model-2"))  # coalesced: one batcher, still inside the slots
    assert state["peak"] == 1
