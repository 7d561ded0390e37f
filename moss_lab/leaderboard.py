"""An arena-style leaderboard: Bradley-Terry ratings of every policy that has been compared.

    board = leaderboard(outcomes_from_judgements(read_judgements("gold")), anchor="toy")

Input: pairwise outcomes (model_a, model_b, winner), winner in {"a", "b", "tie"}, e.g.
the per-prompt verdicts that `moss-lab eval` stores (moss_lab.evaluate), one board per
judge: the gold board, the reward-model board and the people's board are never mixed.
The people's board counts every stored vote (moss_lab.labels) whose pair has two
different policies as sources (an eval's blind pairs, the Compare tab's blind picks):
one vote is one game, "A"/"B" a win, "tie" and "both_bad" a tie (as Chatbot Arena
counts "both are bad"), skips nothing.

The model (Bradley-Terry). Each policy i has a strength theta_i and

    P(i beats j) = sigma(theta_i - theta_j) = 1 / (1 + exp(-(theta_i - theta_j)))

With W_ij = (wins of i over j) + (ties of i and j) / 2 (a tie is half a win each, as
Chatbot Arena counts it) and N_ij = W_ij + W_ji, the fit maximises the penalised
log-likelihood

    L(theta) = sum_{i,j} W_ij log sigma(theta_i - theta_j) - (l2 / 2) sum_i theta_i^2

The L2 prior (theta ~ N(0, 1/l2)) makes the maximum unique and finite even when a policy
won every comparison. With l2 = 0 the first model is fixed at 0 (the ratings are only
defined up to a shift) and the maximum exists iff the graph "i beat or tied j" is strongly
connected (Zermelo/Ford); otherwise the fit refuses with a message. L is concave; it is
maximised by Newton's method with a backtracking line search:

    grad_i = sum_j (W_ij - N_ij p_ij) - l2 theta_i,          p_ij = sigma(theta_i - theta_j)
    H_ij   = N_ij p_ij (1 - p_ij) (i != j),   H_ii = -sum_j N_ij p_ij (1 - p_ij) - l2

Elo scale: rating_i = 1000 + (400 / ln 10) (theta_i - theta_anchor), so the anchor (the
base model "toy" by default) is 1000 and 400 points mean 10:1 odds (a 191-point gap is a
75% expected win rate). For two models, theta_1 - theta_2 = ln(W_12 / W_21) (l2 = 0).

Intervals: percentile bootstrap over the outcomes: R resamples of the n outcomes with
replacement, a fit of each, the 2.5% and 97.5% quantiles of each rating. Resampling n
outcomes with replacement is the same as drawing the counts of each distinct outcome
(model_a, model_b, winner) from Multinomial(n, observed frequencies), which is how it is
done here (fast for any n). The anchor's interval is [1000, 1000] by construction: the
intervals are of ratings relative to it.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

ELO_SCALE = 400.0 / math.log(10.0)
ELO_BASE = 1000.0
WINNERS = ("a", "b", "tie")


class BoardError(ValueError):
    """Outcomes a board cannot be fitted on (the message says why)."""


@dataclass(frozen=True)
class Outcome:
    model_a: str
    model_b: str
    winner: str  # "a", "b" or "tie"


def outcomes_from_judgements(rows: Iterable[dict]) -> list[Outcome]:
    """Stored judgements (moss_lab.evaluate.read_judgements) as outcomes."""
    return [Outcome(r["a"], r["b"], r["winner"]) for r in rows]


def outcomes_from_votes(votes: Iterable[dict]) -> list[Outcome]:
    """Stored votes (LabelStore.votes()) between two different policies as outcomes; the
    policies named as moss_lab.evaluate.policy_key names them (the keys of the gold and rm
    boards)."""
    from .evaluate import policy_key

    keys: dict = {}
    winner = {"A": "a", "B": "b", "tie": "tie", "both_bad": "tie"}
    out = []
    for v in votes:
        if v.get("choice") not in winner:
            continue
        for source in (v.get("source_a"), v.get("source_b")):
            if source not in keys:
                keys[source] = policy_key(source)
        a, b = keys[v.get("source_a")], keys[v.get("source_b")]
        if a and b and a != b:
            out.append(Outcome(a, b, winner[v["choice"]]))
    return out


def _check(outcomes: Sequence[Outcome]) -> list[str]:
    if not outcomes:
        raise BoardError("no outcomes: compare some policies first (moss-lab eval)")
    for o in outcomes:
        if o.winner not in WINNERS:
            raise BoardError(f"winner must be one of {WINNERS}, not {o.winner!r}")
        if o.model_a == o.model_b:
            raise BoardError(f"an outcome of {o.model_a!r} against itself")
    models = sorted({o.model_a for o in outcomes} | {o.model_b for o in outcomes})
    if len(models) < 2:
        raise BoardError("need at least two models")
    return models


def win_matrix(outcomes: Sequence[Outcome], models: Sequence[str]) -> np.ndarray:
    """W[i, j] = wins of models[i] over models[j] + half their ties."""
    index = {m: i for i, m in enumerate(models)}
    W = np.zeros((len(models), len(models)))
    for o in outcomes:
        i, j = index[o.model_a], index[o.model_b]
        s = {"a": 1.0, "b": 0.0, "tie": 0.5}[o.winner]
        W[i, j] += s
        W[j, i] += 1.0 - s
    return W


def log_likelihood(theta: np.ndarray, W: np.ndarray, l2: float = 0.0) -> float:
    """L(theta) of the module doc (sum_{i,j} W_ij log sigma(theta_i - theta_j) - l2/2 |theta|^2)."""
    d = theta[:, None] - theta[None, :]
    return float((W * -np.logaddexp(0.0, -d)).sum() - 0.5 * l2 * (theta ** 2).sum())


def strongly_connected(W: np.ndarray) -> bool:
    """Whether every model reaches every other along "beat or tied" edges (W_ij > 0)."""
    m = len(W)
    adj = W > 0
    for start, graph in ((0, adj), (0, adj.T)):  # reach all from 0, and 0 from all
        seen, todo = {start}, [start]
        while todo:
            i = todo.pop()
            for j in np.flatnonzero(graph[i]):
                if j not in seen:
                    seen.add(int(j))
                    todo.append(int(j))
        if len(seen) < m:
            return False
    return True


def fit_theta(W: np.ndarray, l2: float = 0.01, max_iter: int = 200, tol: float = 1e-9) -> np.ndarray:
    """The maximiser of L(theta) (module doc) by Newton's method with backtracking."""
    m = len(W)
    if l2 < 0:
        raise BoardError("l2 must be >= 0")
    if l2 == 0 and not strongly_connected(W):
        raise BoardError("no finite Bradley-Terry ratings: some policy won (or lost) every "
                         "comparison linking it to the others, or the comparisons do not "
                         "connect all policies; use an L2 prior (l2 > 0) or compare more")
    free = np.arange(1 if l2 == 0 else 0, m)  # l2 = 0: model 0 fixed at 0
    N = W + W.T
    theta = np.zeros(m)
    f = log_likelihood(theta, W, l2)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
        grad = (W - N * p).sum(axis=1) - l2 * theta
        if np.abs(grad[free]).max() < tol:
            return theta
        c = N * p * (1.0 - p)
        H = c - np.diag(c.sum(axis=1) + l2)
        step = np.zeros(m)
        step[free] = np.linalg.solve(H[np.ix_(free, free)], -grad[free])
        t = 1.0
        while True:  # backtracking: L must not decrease
            new = theta + t * step
            f_new = log_likelihood(new, W, l2)
            if f_new >= f - 1e-12 or t < 1e-8:
                break
            t /= 2
        theta, f = new, f_new
    p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
    grad = (W - N * p).sum(axis=1) - l2 * theta
    if np.abs(grad[free]).max() > 1e-6 * max(1.0, N.sum()):
        raise BoardError(f"the Bradley-Terry fit did not converge in {max_iter} steps")
    return theta


def to_elo(theta: np.ndarray, anchor_index: int | None) -> np.ndarray:
    """Ratings on the Elo scale: 1000 + 400/ln(10) (theta - theta_anchor); the mean of
    theta is the reference when there is no anchor."""
    ref = theta[anchor_index] if anchor_index is not None else theta.mean()
    return ELO_BASE + ELO_SCALE * (theta - ref)


def fit_ratings(outcomes: Sequence[Outcome], anchor: str | None = "toy",
                l2: float = 0.01) -> dict[str, float]:
    """{model: Elo-scale rating} of the maximum-likelihood fit (no intervals)."""
    models = _check(outcomes)
    theta = fit_theta(win_matrix(outcomes, models), l2)
    elo = to_elo(theta, models.index(anchor) if anchor in models else None)
    return dict(zip(models, elo.tolist()))


def leaderboard(outcomes: Sequence[Outcome], anchor: str | None = "toy", l2: float = 0.01,
                n_resamples: int = 1000, seed: int = 0) -> list[dict]:
    """One row per model, best first: rating, rating_ci95, games, wins, ties, losses.

    anchor: the model rated 1000 (when present; else the mean strength is 1000).
    Bootstrap resamples whose fit fails (l2 = 0 and a resample with an unbeaten model)
    are left out; `bootstrap_failed` on every row counts them.
    """
    models = _check(outcomes)
    anchor_index = models.index(anchor) if anchor in models else None
    W = win_matrix(outcomes, models)
    rating = to_elo(fit_theta(W, l2), anchor_index)

    # bootstrap: multinomial counts over the distinct outcomes (module doc)
    kinds = Counter(outcomes)
    distinct = list(kinds)
    freq = np.array([kinds[k] for k in distinct], dtype=float)
    freq /= freq.sum()
    parts = np.stack([win_matrix([k], models) for k in distinct])  # (K, m, m)
    rng = np.random.default_rng(seed)
    draws, failed = [], 0
    for _ in range(n_resamples):
        counts = rng.multinomial(len(outcomes), freq)
        try:
            draws.append(to_elo(fit_theta(np.tensordot(counts, parts, axes=1), l2), anchor_index))
        except BoardError:
            failed += 1
    if draws:
        ci = np.quantile(np.stack(draws), [0.025, 0.975], axis=0).T
    else:
        ci = np.full((len(models), 2), np.nan)

    tally = {m: Counter() for m in models}
    for o in outcomes:
        tally[o.model_a]["games"] += 1
        tally[o.model_b]["games"] += 1
        if o.winner == "tie":
            tally[o.model_a]["ties"] += 1
            tally[o.model_b]["ties"] += 1
        else:
            winner, loser = (o.model_a, o.model_b) if o.winner == "a" else (o.model_b, o.model_a)
            tally[winner]["wins"] += 1
            tally[loser]["losses"] += 1
    rows = [{"model": m, "rating": float(rating[i]), "rating_ci95": [float(x) for x in ci[i]],
             "games": tally[m]["games"], "wins": tally[m]["wins"], "ties": tally[m]["ties"],
             "losses": tally[m]["losses"], "bootstrap_failed": failed}
            for i, m in enumerate(models)]
    return sorted(rows, key=lambda r: -r["rating"])
