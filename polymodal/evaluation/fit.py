"""Learn the router's head from the tuning part: ``polymodal eval --fit``.

Each tuning case is routed by the cosine router (no head); every clause it scores becomes a
training sample: the clause's MiniLM embedding, the tools it could feed (their cosines) and the
gold tool (the first by cosine among the tools the case's gold step allows). A case whose clauses
cannot be paired with its gold steps in order is left out, and said so.

The head (:class:`~polymodal.agent.router_head.RouterHead`) is a softmax over the candidate tools,
trained by gradient descent (Adam, numpy) on cross-entropy plus an L2 penalty that pulls it back
to the cosine router. Held-out cases are never read: they are dropped by their ``split`` before
anything else looks at them. How well it generalizes is measured inside the tuning part, by
cross-validation over cases (5 folds): the L2 strength with the best out-of-fold accuracy wins,
a temperature is fitted to the out-of-fold logits (Platt's idea with one parameter), and
``min_confidence`` is the lowest probability above which out-of-fold routes were right at least
:data:`TARGET_PRECISION` of the time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polymodal.agent.router import Router
from polymodal.agent.router_head import PROBE, RouterHead
from polymodal.errors import ConfigurationError
from polymodal.evaluation.calibration import Bin, ece, reliability
from polymodal.evaluation.cases import EvalCase
from polymodal.evaluation.run import request_of
from polymodal.tools.base import Tool

__all__ = ["TARGET_PRECISION", "FitResult", "Sample", "fit_head", "training_samples", "with_head"]

TARGET_PRECISION = 0.95
_FOLDS = 5
_L2 = (0.01, 0.1, 0.3, 1.0, 3.0)
_ALPHA = 20.0  # the cosine prior's scale at the start: differences of 0.05 in cosine are one unit of logit
_STEPS = 250
_TEMPERATURES = np.exp(np.linspace(np.log(0.2), np.log(5.0), 61))


@dataclass
class Sample:
    """One clause to learn from."""

    case: str
    text: str
    embedding: np.ndarray
    names: list[str]
    """The tools the clause could feed, best cosine first."""
    cosines: list[float]
    label: int
    """Index in ``names`` of the gold tool."""


@dataclass
class FitResult:
    """The fitted head and how it did out of fold, inside the tuning part."""

    head: RouterHead
    samples: int
    cases: int
    skipped: dict[str, str]
    """Tuning case id -> why none of its clauses was learned from."""
    l2: float
    accuracy_cosine: float
    """Share of samples whose best cosine is the gold tool (the router without a head)."""
    accuracy_head: float
    """The same for the head's most likely tool, out of fold."""
    ece_before: float
    """Out-of-fold ECE of the head's probabilities before the temperature, and after it."""
    ece_after: float
    bins: list[Bin] = field(default_factory=list)
    """The reliability diagram of the calibrated out-of-fold probabilities (5 bins)."""


def training_samples(cases: Sequence[EvalCase], tools: Mapping[str, Tool],
                     router: Router) -> tuple[list[Sample], int, dict[str, str]]:
    """(samples, tuning cases read, skipped) from the tuning part of ``cases``; held-out ones are never routed."""
    tuning = [case for case in cases if case.split == "tuning" and not case.skipped]
    samples: list[Sample] = []
    skipped: dict[str, str] = {}
    for case in tuning:
        route = router.route(request_of(case), tools, decide_close=True)
        parts = [p for p in route.clauses
                 if p.embedding is not None and p.scores and p.cue != "for the answer's writer"]
        sets = [step.tools for step in case.steps]
        distinct = list(dict.fromkeys(sets))
        gold = sets if len(parts) == len(sets) else distinct if len(parts) == len(distinct) else None
        if not parts or gold is None:
            skipped[case.id] = f"{len(parts)} clause(s) routed for {len(sets)} gold step(s)"
            continue
        for part, allowed in zip(parts, gold, strict=True):
            names = [name for name, _ in part.scores]
            fitting = [i for i, name in enumerate(names) if name in allowed]
            if fitting and part.embedding is not None:
                samples.append(Sample(case.id, part.text, part.embedding, names,
                                      [score for _, score in part.scores], fitting[0]))
    return samples, len(tuning), skipped


def fit_head(cases: Sequence[EvalCase], tools: Mapping[str, Tool], router: Router | None = None) -> FitResult:
    """Fit, cross-validate and calibrate a head on the tuning part of ``cases``.

    ``router``: whose encoder (and ``unavailable`` tools) to learn with; its own head is not used.
    Raises ConfigurationError when the tuning part gives too little to learn from.
    """
    base = router or Router()
    cosine = with_head(base, None)
    samples, read, skipped = training_samples(cases, tools, cosine)
    if len(samples) < 2 * _FOLDS:
        msg = f"--fit needs at least {2 * _FOLDS} clauses to learn from in the tuning part; it has {len(samples)}"
        raise ConfigurationError(msg)
    names = sorted({name for s in samples for name in s.names})
    data = _Arrays.of(samples, names)
    folds = np.asarray([int(hashlib.sha256(s.case.encode()).hexdigest(), 16) % _FOLDS for s in samples])
    best: tuple[float, float, float, np.ndarray] | None = None  # (accuracy, -nll, l2, out-of-fold logits)
    for l2 in _L2:
        logits = np.full(data.cos.shape, -np.inf)
        for fold in range(_FOLDS):
            train, test = folds != fold, folds == fold
            if test.any() and train.any():
                logits[test] = data.logits(_train(data.subset(train), l2), test)
        accuracy = float(np.mean(logits.argmax(axis=1) == data.label))
        score = (accuracy, -_nll(logits, data.label), l2, logits)
        if best is None or score[:2] > best[:2]:
            best = score
    assert best is not None
    accuracy, _, l2, oof = best
    temperature = float(min(_TEMPERATURES, key=lambda t: _nll(oof / t, data.label)))
    before, after = _softmax(oof), _softmax(oof / temperature)
    right = list(before.argmax(axis=1) == data.label)
    alpha, bias, weights = _train(data, l2)
    head = RouterHead(names, alpha, bias, weights, temperature, base.bundle().encoder.embed([PROBE])[0],
                      _min_confidence(after.max(axis=1), right))
    return FitResult(head, len(samples), read, skipped, l2, float(np.mean(data.label == 0)), accuracy,
                     ece(list(before.max(axis=1)), right), ece(list(after.max(axis=1)), right),
                     reliability(list(after.max(axis=1)), right))


def with_head(router: Router, head: RouterHead | str | Path | None) -> Router:
    """A router like ``router`` (model, thresholds, unavailable tools) deciding with ``head`` instead."""
    return Router(router.model, min_score=router.min_score, min_margin=router.min_margin,
                  split_clauses=router.split_clauses, device=router.device, unavailable=router.unavailable.values(),
                  head=head)


@dataclass
class _Arrays:
    """The samples as padded arrays: candidate tool indices, cosines, a mask, embeddings, labels."""

    index: np.ndarray  # (n, k) tool index per candidate
    cos: np.ndarray  # (n, k)
    mask: np.ndarray  # (n, k) True where a candidate is
    embedding: np.ndarray  # (n, d)
    label: np.ndarray  # (n,)
    tools: int

    @classmethod
    def of(cls, samples: Sequence[Sample], names: Sequence[str]) -> _Arrays:
        width = max(len(s.names) for s in samples)
        index = np.zeros((len(samples), width), dtype=np.int64)
        cos = np.zeros((len(samples), width))
        mask = np.zeros((len(samples), width), dtype=bool)
        for row, sample in enumerate(samples):
            k = len(sample.names)
            index[row, :k] = [names.index(n) for n in sample.names]
            cos[row, :k] = sample.cosines
            mask[row, :k] = True
        embedding = np.stack([s.embedding for s in samples]).astype(np.float64)
        return cls(index, cos, mask, embedding, np.asarray([s.label for s in samples]), len(names))

    def subset(self, rows: np.ndarray) -> _Arrays:
        return _Arrays(self.index[rows], self.cos[rows], self.mask[rows], self.embedding[rows], self.label[rows],
                       self.tools)

    def logits(self, params: tuple[float, np.ndarray, np.ndarray], rows: np.ndarray | None = None) -> np.ndarray:
        part = self if rows is None else self.subset(rows)
        alpha, bias, weights = params
        z = alpha * part.cos + bias[part.index] + np.einsum("nkd,nd->nk", weights[part.index], part.embedding)
        return np.where(part.mask, z, -np.inf)


def _train(data: _Arrays, l2: float) -> tuple[float, np.ndarray, np.ndarray]:
    """(alpha, bias, weights) minimising mean cross-entropy + l2/2 * (|bias|^2 + |weights|^2), with Adam."""
    n, dim = data.embedding.shape
    params = [np.asarray([_ALPHA]), np.zeros(data.tools), np.zeros((data.tools, dim))]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    onehot = np.zeros(data.cos.shape)
    onehot[np.arange(n), data.label] = 1.0
    for step in range(1, _STEPS + 1):
        grad_z = (_softmax(data.logits((float(params[0][0]), params[1], params[2]))) - onehot) / n
        grad_bias, grad_weights = l2 * params[1], l2 * params[2]
        np.add.at(grad_bias, data.index[data.mask], grad_z[data.mask])
        np.add.at(grad_weights, data.index[data.mask],
                  grad_z[data.mask][:, None] * np.repeat(data.embedding, data.mask.sum(axis=1), axis=0))
        grads = [np.asarray([np.sum(grad_z * data.cos)]), grad_bias, grad_weights]
        for i, (param, grad) in enumerate(zip(params, grads, strict=True)):
            first, second = moments[i]
            first[...] = 0.9 * first + 0.1 * grad
            second[...] = 0.999 * second + 0.001 * grad * grad
            param -= 0.05 * (first / (1 - 0.9**step)) / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
    return float(params[0][0]), params[1], params[2]


def _softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _nll(z: np.ndarray, label: np.ndarray) -> float:
    p = _softmax(z)[np.arange(len(label)), label]
    return float(-np.mean(np.log(np.maximum(p, 1e-12))))


def _min_confidence(confidence: np.ndarray, right: Sequence[bool]) -> float:
    """The lowest threshold whose out-of-fold routes at or above it reach TARGET_PRECISION (0.5 if none)."""
    outcome = np.asarray(right)
    for threshold in np.round(np.arange(0.3, 0.96, 0.05), 2):
        chosen = confidence >= threshold
        if chosen.any() and outcome[chosen].mean() >= TARGET_PRECISION:
            return float(threshold)
    return 0.5
