"""Reward models fitted to ratings (moss_lab.ratings), not to pairs.

A reward model is any function r(prompt, response) fitted to human scores. Two here,
each scoring (prompt, response) -> float like the Bradley-Terry reward model, so the
same agreement with gold on held-out pairs measures all three (`gold_agreement`):

(a) Linear regression on simple features (the seed's "linear regression" baseline):

        r(x, y) = w . phi(x, y) + b,   (w, b) = argmin |Phi w + b - s|^2 + l2 |w|^2

    phi = linear_features: length, topic words, politeness words, repetition...; the
    ridge solution is closed form (`ridge_fit`, on standardised features).

(b) The transformer reward model (the BT model's init, moss_lab.reward.init_reward_model)
    with a regression head trained by mean squared error on the overall rating:

        loss = mean_i (r_i - z_i)^2 + aspect_coef * mean_{i,a} (r_ia - z_ia)^2,
        z = (stars - 3) / 2  (1..5 stars -> -1..1)

    Output 0 is the overall score (what PPO and `scoring.score` read); with
    aspect_heads=True outputs 1..4 predict the aspects (ratings.ASPECTS), so a learner
    sees which aspect a policy improves or exploits (`aspect_stars`).

Equal labelling effort (benchmarks/ratings_vs_pairs.py): a pairwise label reads two
responses and gives one bit; a rating reads one response and gives five numbers. The
comparison is made at an equal number of responses read (B ratings vs B/2 pairs) and at
an equal number of labels (B ratings vs B pairs), on the same held-out pairs.

Measured 2026-12-02 (benchmarks/ratings_vs_pairs.py, seeds 0 and 1, 1000 held-out pairs;
toy base; BT with RewardConfig(), regression with RatingRewardConfig(); annotator noise
0.6, which agrees with gold on 0.90 of the held-out pairs; rater noise 0.5 stars, whose
overall stars order 0.85 of them as gold does, a tie counted as half). Agreement with gold:

    responses read              500                  2000
    BT, equal reading (B/2)     0.623 0.659 (0.64)   0.670 0.710 (0.69)
    BT, equal count (B pairs)   0.681 0.690 (0.69)   0.756 0.770 (0.76)
    regression, B ratings       0.658 0.668 (0.66)   0.736 0.715 (0.73)
    + per-aspect heads          0.675 0.654 (0.66)   0.731 0.710 (0.72)
    linear (ridge), B ratings   0.874 0.840 (0.86)   0.878 0.848 (0.86)

At equal reading the rating-regression transformer beats BT (+0.02 at 500, +0.035 at
2000); at an equal count of labels BT wins (it read twice as much). The per-aspect heads
neither help nor hurt the overall score. The linear model wins by far: its features were
chosen knowing what the toy world's gold score counts (topic words, rude words, repeats),
while the 2-layer transformer must learn them from few labels. On real text no one
knows the gold features, so this result says nothing about the linear model there. Training time (machine shared with 7
other jobs): 25-35 s per transformer at 500, 80-200 s at 2000; the linear fit ~1 s.
"""
from __future__ import annotations

import math
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, ClassVar, Literal

import numpy as np
import torch

from . import preferences, ratings as rating_records, toyworld
from .configs import Bound, between, check_bounds
from .ratings import ASPECTS, Rating
from .reward import (MODEL_SUBDIR, _lr_factor, evaluate_reward_model, init_reward_model,
                     ready_to_train)
from .run_folder import RunFolder
from .scoring import reward_inputs

# ---------------------------------------------------------------------------------------
# (a) Linear regression on simple features
# ---------------------------------------------------------------------------------------
QUESTION_WORDS = frozenset(
    "human: assistant: tell me about what do you know can explain say something i want to "
    "learn are like the a an is of and how why please . ? !".split())
POLITE_WORDS = frozenset("sure happy help thanks glad hope please".split())
IMPOLITE_WORDS = frozenset("silly dumb away care else should".split())
FEATURES = ("words", "sentences", "topic_words", "other_topic_words", "polite_words",
            "impolite_words", "repeated_sentences", "distinct_word_share", "unfinished")


def linear_features(prompt: str, response: str) -> list[float]:
    """phi(prompt, response): the FEATURES, counted on the words.

    words               length in words
    sentences           chunks ending in '.', '!' or '?'
    topic_words         response words that are content words of the prompt
    other_topic_words   the toy world's topic nouns that the prompt does not name
    polite_words / impolite_words   words from two short lists
    repeated_sentences  sentences said before in the same response
    distinct_word_share distinct words / words (low: repetitive)
    unfinished          1 when the last word is not an end mark
    """
    words = response.split()
    topic = {w for w in prompt.lower().split() if w not in QUESTION_WORDS}
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s", response) if s.strip()]
    lower = [w.lower() for w in words]
    return [float(len(words)), float(len(sentences)),
            float(sum(w in topic for w in lower)),
            float(sum(w in toyworld.FACTS and w not in topic for w in lower)),
            float(sum(w in POLITE_WORDS for w in lower)),
            float(sum(w in IMPOLITE_WORDS for w in lower)),
            float(len(sentences) - len(set(sentences))),
            len(set(lower)) / len(lower) if lower else 0.0,
            float(bool(words) and words[-1] not in {".", "!", "?"})]


def ridge_fit(X: np.ndarray, y: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Ridge regression in closed form, intercept not penalised; returns (w, b).

    With Z = (X - mean) / std (columns of zero spread keep std 1):
        v = (Z^T Z + l2 I)^{-1} Z^T (y - mean(y)),   w = v / std,   b = mean(y) - mean . w
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
        raise ValueError(f"ridge_fit needs X of shape (n, d) and y of shape (n,), got "
                         f"{X.shape} and {y.shape}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    mean, std = X.mean(axis=0), X.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    Z = (X - mean) / std
    v = np.linalg.solve(Z.T @ Z + l2 * np.eye(X.shape[1]), Z.T @ (y - y.mean()))
    w = v / std
    return w, float(y.mean() - mean @ w)


@dataclass
class LinearRewardModel:
    """r(prompt, response) = weights . linear_features + bias (in stars of the target)."""

    weights: dict[str, float]
    bias: float
    target: str = "overall"

    def score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        X = np.array([linear_features(p, r) for p, r in zip(prompts, responses)]).reshape(-1, len(FEATURES))
        return X @ np.array([self.weights[f] for f in FEATURES]) + self.bias


def fit_linear_reward(ratings, l2: float = 1.0, target: str = "overall") -> LinearRewardModel:
    """Ridge regression of one rating (overall or an aspect) on linear_features."""
    if target != "overall" and target not in ASPECTS:
        raise ValueError(f"unknown target {target!r}: use 'overall' or one of {', '.join(ASPECTS)}")
    rows = [rating_records.validate(r) for r in ratings]
    rows = [r for r in rows if target == "overall" or target in r.aspects]
    if not rows:
        raise ValueError(f"no ratings with a {target!r} score to fit")
    X = [linear_features(r.prompt, r.response) for r in rows]
    y = [r.overall if target == "overall" else r.aspects[target] for r in rows]
    w, b = ridge_fit(np.array(X), np.array(y), l2)
    return LinearRewardModel(dict(zip(FEATURES, w.tolist())), b, target)


# ---------------------------------------------------------------------------------------
# Agreement with gold: one yardstick for every scorer
# ---------------------------------------------------------------------------------------
def gold_agreement(score_fn: Callable[[list[str], list[str]], object], pairs) -> float | None:
    """Fraction of held-out pairs that score_fn(prompts, responses) orders as the gold
    score does (preferences.gold_judged: gold ties and pairs without gold skipped)."""
    pairs = list(pairs)
    prompts = [p.prompt for p in pairs]
    r_c = np.asarray(score_fn(prompts, [p.chosen for p in pairs]), dtype=float)
    r_r = np.asarray(score_fn(prompts, [p.rejected for p in pairs]), dtype=float)
    return preferences.gold_agreement(pairs, judged=(r_c - r_r).tolist())


# ---------------------------------------------------------------------------------------
# (b) The transformer reward model with a regression head
# ---------------------------------------------------------------------------------------
def stars_to_target(stars) -> torch.Tensor:
    """z = (stars - 3) / 2: 1..5 stars -> -1..1 (a fresh head outputs ~0, i.e. 3 stars)."""
    return (torch.as_tensor(stars, dtype=torch.float32) - 3.0) / 2.0


def target_to_stars(z: torch.Tensor) -> torch.Tensor:
    return 3.0 + 2.0 * z


@dataclass
class RatingRewardConfig:
    """Hyperparameters of the rating-regression reward model (defaults as RewardConfig's
    where they mean the same thing, so the comparison with BT changes only the loss)."""

    base: str = "toy"
    """The base LM the reward model starts from (as RewardConfig.base)."""
    epochs: int = 7
    """Passes over the training ratings."""
    batch_size: int = 64
    """Ratings per step (a BT step reads 2 x batch_size texts, this one batch_size)."""
    lr: float = 2e-3
    """Peak AdamW learning rate."""
    warmup_steps: int = 20
    """Linear warmup steps (at most a fifth of the run), then cosine decay."""
    min_lr_ratio: float = 0.1
    """The cosine decay ends at this fraction of lr."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm."""
    eval_fraction: float = 0.1
    """Share of the ratings held out for eval/mse."""
    freeze_embeddings: bool = True
    """Keep the base model's token and position embeddings (as RewardConfig)."""
    eval_every_epoch: bool = True
    """Evaluate after every epoch (else at the end only)."""
    aspect_heads: bool = False
    """One more output per aspect (ratings.ASPECTS), trained on the aspect ratings."""
    aspect_coef: float = 1.0
    """Weight of the aspects' mean squared error (with aspect_heads)."""
    seed: int = 0
    """Seeds the head, the split and the batch order."""
    threads: int | None = None
    """CPU threads; None: 1 for tiny models."""
    device: str | None = None
    """"cpu", "cuda", "mps", or None for the best available."""
    attn_implementation: Literal["eager", "sdpa"] | None = None
    """As RewardConfig.attn_implementation."""

    BOUNDS: ClassVar[dict[str, Bound]] = {
        "epochs": between(1, 1000), "batch_size": between(1, 4096),
        "lr": between(0, 1, lo_open=True), "warmup_steps": between(0, 100_000),
        "min_lr_ratio": between(0, 1), "weight_decay": between(0, 10),
        "max_grad_norm": between(0, 1e6, lo_open=True), "eval_fraction": between(0, 0.9),
        "aspect_coef": between(0, 100), "seed": between(0, 2**32 - 1),
        "threads": between(1, 256),
    }

    def __post_init__(self) -> None:
        errors = check_bounds(self)
        if errors:
            raise ValueError("invalid rating reward-model config: " + "; ".join(errors))


def init_rating_model(base: str = "toy", seed: int = 0, aspect_heads: bool = False,
                      attn_implementation: str | None = None):
    """The BT reward model's init; with aspect_heads the head gets 1 + len(ASPECTS)
    outputs (output 0 stays the overall score, so scoring.score reads it unchanged)."""
    model, tokenizer = init_reward_model(base, seed, attn_implementation)
    if aspect_heads:
        head = getattr(model, "score", None)
        if not isinstance(head, torch.nn.Linear):
            raise ValueError(f"{type(model).__name__} has no linear `score` head to widen "
                             "for per-aspect outputs: use aspect_heads=False")
        k = 1 + len(ASPECTS)
        torch.manual_seed(seed)
        model.score = torch.nn.Linear(head.in_features, k, bias=head.bias is not None)
        torch.nn.init.normal_(model.score.weight, std=getattr(model.config, "initializer_range", 0.02))
        model.num_labels = model.config.num_labels = k
    return model, tokenizer


def rating_targets(batch: list[Rating], aspect_heads: bool) -> torch.Tensor:
    """(n, 1) overall targets z, or (n, 1 + len(ASPECTS)) with NaN where an aspect is missing."""
    rows = [[r.overall] + ([r.aspects.get(a, math.nan) for a in ASPECTS] if aspect_heads else [])
            for r in batch]
    return stars_to_target(rows)


def rating_loss(outputs: torch.Tensor, targets: torch.Tensor, aspect_coef: float = 1.0):
    """(loss, overall mse, aspect mse or None) for head outputs (n, k) and targets (n, k):

        loss = mean_i (r_i0 - z_i0)^2 + aspect_coef * mean over known (i, a) of (r_ia - z_ia)^2
    """
    overall = ((outputs[:, 0] - targets[:, 0]) ** 2).mean()
    if targets.shape[1] == 1:
        return overall, overall, None
    known = ~torch.isnan(targets[:, 1:])
    err = (outputs[:, 1:] - targets[:, 1:].nan_to_num()) ** 2
    aspect = (err * known).sum() / known.sum().clamp(min=1)
    return overall + aspect_coef * aspect, overall, aspect


def _forward(model, tokenizer, batch: list[Rating], device) -> torch.Tensor:
    inputs = reward_inputs(tokenizer, [r.prompt for r in batch], [r.response for r in batch], device)
    return model(**inputs).logits


@torch.no_grad()
def aspect_stars(model, tokenizer, prompts: list[str], responses: list[str],
                 batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Predicted stars per output: {"overall": (n,), and each aspect with aspect heads}."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    outs = []
    for i in range(0, len(prompts), batch_size):
        inputs = reward_inputs(tokenizer, prompts[i:i + batch_size], responses[i:i + batch_size], device)
        outs.append(model(**inputs).logits.float().cpu())
    model.train(was_training)
    stars = target_to_stars(torch.cat(outs))
    names = ("overall",) + (ASPECTS if stars.shape[1] > 1 else ())
    return {name: stars[:, j] for j, name in enumerate(names)}


@torch.no_grad()
def evaluate_ratings(model, tokenizer, held_out: list[Rating]) -> dict:
    """Mean squared error in stars on held-out ratings: mse (overall) and mse/<aspect>."""
    pred = aspect_stars(model, tokenizer, [r.prompt for r in held_out], [r.response for r in held_out])
    out = {"mse": ((pred["overall"] - torch.tensor([float(r.overall) for r in held_out])) ** 2).mean().item()}
    for a in ASPECTS:
        known = [(i, r.aspects[a]) for i, r in enumerate(held_out) if a in r.aspects]
        if a in pred and known:
            idx, val = zip(*known)
            out[f"mse/{a}"] = ((pred[a][list(idx)] - torch.tensor(val, dtype=torch.float32)) ** 2).mean().item()
    return out


def _batches(ratings: list[Rating], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length (sorted within chunks of 32 batches), as in reward.py."""
    order = list(range(len(ratings)))
    rng.shuffle(order)
    chunk = batch_size * 32
    order = [i for s in range(0, len(order), chunk)
             for i in sorted(order[s:s + chunk], key=lambda i: len(ratings[i].response.split()))]
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def train_rating_model(ratings, config: RatingRewardConfig | None = None,
                       run_dir: str | Path | None = None,
                       on_metrics: Callable[[dict], None] | None = None,
                       should_stop: Callable[[], bool] | None = None,
                       eval_pairs=None):
    """Train a regression-head reward model on ratings; return (model, tokenizer, final).

    A random config.eval_fraction of the ratings is held out for eval/mse; `eval_pairs`
    (Preferences) add the BT yardstick: eval/acc_gold and the rest of
    reward.evaluate_reward_model. Writes config.json, metrics.jsonl, model/ and
    result.json to `run_dir` like reward.train_reward_model.
    Metrics per step: step, epoch, lr, loss, train/mse, train/mse_aspects, reward/mean,
    reward/std, time/step_s; per epoch: eval/mse, eval/mse/<aspect>, eval/acc_gold...
    """

    config = config or RatingRewardConfig()
    ratings = [rating_records.validate(r) for r in ratings]
    order = list(range(len(ratings)))
    random.Random(config.seed).shuffle(order)
    n_eval = int(round(len(ratings) * config.eval_fraction))
    held_out = [ratings[i] for i in order[:n_eval]]
    train = [ratings[i] for i in order[n_eval:]]
    if not train:
        raise ValueError("no training ratings")
    eval_pairs = [preferences.validate(p) for p in eval_pairs] if eval_pairs else []
    start = time.perf_counter()
    model, tokenizer = init_rating_model(config.base, config.seed, config.aspect_heads,
                                         config.attn_implementation)
    device = ready_to_train(model, config)
    folder = RunFolder(run_dir, {**asdict(config), "n_train": len(train), "n_eval": len(held_out),
                                 "n_eval_pairs": len(eval_pairs)})

    def emit(record: dict) -> None:
        folder.log(record)
        if on_metrics is not None:
            on_metrics(record)

    rng = random.Random(config.seed)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, total, config))
    step, stopped, last_eval = 0, False, {}
    for epoch in range(config.epochs):
        # ---- one pass over the training ratings ----
        for idx in _batches(train, config.batch_size, rng):
            if should_stop is not None and should_stop():
                stopped = True
                break
            t0 = time.perf_counter()
            batch = [train[i] for i in idx]
            outputs = _forward(model, tokenizer, batch, device)
            loss, mse, mse_aspects = rating_loss(
                outputs, rating_targets(batch, config.aspect_heads).to(outputs), config.aspect_coef)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            opt.step()
            sched.step()
            step += 1
            stars = target_to_stars(outputs[:, 0].detach())
            emit({"step": step, "epoch": step / steps_per_epoch, "lr": sched.get_last_lr()[0],
                  "loss": loss.item(), "train/mse": 4 * mse.item(),  # in stars^2
                  **({"train/mse_aspects": 4 * mse_aspects.item()} if mse_aspects is not None else {}),
                  "reward/mean": stars.mean().item(),
                  "reward/std": stars.std().item() if len(stars) > 1 else 0.0,
                  "time/step_s": time.perf_counter() - t0})
        # ---- held-out evaluation ----
        if config.eval_every_epoch or stopped or epoch == config.epochs - 1:
            last_eval = {}
            if held_out:
                last_eval.update(evaluate_ratings(model, tokenizer, held_out))
            if eval_pairs:
                ev = evaluate_reward_model(model, tokenizer, eval_pairs)
                last_eval.update({k: v for k, v in ev.items() if k not in ("n", "loss", "acc_labels")})
            if last_eval:
                emit({"step": step, "epoch": step / steps_per_epoch,
                      **{f"eval/{k}": v for k, v in last_eval.items() if k != "n_gold"}})
        if stopped:
            break

    model.eval()
    final = dict(last_eval)
    final.update(seconds=time.perf_counter() - start, steps=step, n_train=len(train),
                 n_eval=len(held_out), stopped=stopped)
    folder.save_model(model, tokenizer, MODEL_SUBDIR)
    folder.write("result.json", {"status": "stopped" if stopped else "finished", **final})
    if folder.path is not None:
        final["run_dir"] = str(folder.path)
    return model, tokenizer, final
