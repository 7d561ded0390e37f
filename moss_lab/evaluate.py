"""Comparing two policies: win rates of A against B, with bootstrap 95% intervals.

    result = compare("toy", "runs/ppo-1", n=200, judges=("gold", "rm"))
    result.summary()        # {"a", "b", "n", "by_judge": {...}, "agreement": {...}, ...}
    save(result)            # <data home>/evals/<name>.jsonl, one row per prompt and judge

The pipeline: both policies answer the same N prompts, one sampled response each; every
judge scores both responses; the higher score wins the prompt.

Judges
    gold   the toy world's true score, toyworld.gold_score(prompt, response, ended).total
           (toy prompts only). Its scores are discrete, so ties are common.
    rm     a reward model's score r(prompt, response) (moss_lab.scoring.score); the toy
           reward model by default. It only ties on identical responses.
    people blind votes in the Label tab: save_with_people() stores the N pairs (A's and
           B's responses to each prompt) in the label store; people_verdicts() reads the votes
           cast on them so far (and the Compare tab's blind picks between the same two
           policies). Per pair, with s = +1 for a vote for A's response, -1 for B's, 0 for
           tie or both-bad (skips ignored): v = sign(sum of s) (the majority; even = tie).

Verdicts and rates. For prompt i with scores s_A(i), s_B(i) and tolerance tol:

    v_i = +1 (A wins)  if s_A(i) - s_B(i) >  tol
    v_i =  0 (tie)     if |s_A(i) - s_B(i)| <= tol
    v_i = -1 (B wins)  if s_A(i) - s_B(i) < -tol

    win_rate  = #{v_i = +1} / n        tie_rate = #{v_i = 0} / n
    loss_rate = #{v_i = -1} / n        margin   = win_rate - loss_rate = mean(v_i)

so the three rates add up to 1: ties are reported, never dropped or split.

Bootstrap (percentile, over prompts). A rate is the mean of a per-prompt value x_i (e.g.
x_i = [v_i = +1] for the win rate). Draw R resamples of n prompt indices with
replacement (seeded), compute the mean of x over each resample, theta*_1..theta*_R, and
report the 2.5% and 97.5% quantiles of theta* as the 95% interval. The prompts are the
unit resampled, so all judges' figures come from the same resampled prompts.

Agreement of two judges on the same pairs, ties handled explicitly:

    agreement            = #{v_i^1 = v_i^2} / n           (a tie vs a win is a disagreement)
    decisive_agreement   = #{v_i^1 = v_i^2} / #{v_i^1 != 0 and v_i^2 != 0}
    kappa                = Cohen's kappa over the three verdicts (moss_lab.labels)

Sampling: moss_lab.sampling.generate (the project's sampler: temperature, nucleus top_p,
stop at <eos>); A and B are sampled with different seeds, so their responses are
independent draws (a policy against an exact copy of itself would tie ~never on rm and
win ~half of the decisive pairs, as it should).
"""
from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAX_PROMPTS = 10_000
MAX_PEOPLE_PAIRS = 1_000  # pairs queued for people by one eval: more would never be labelled
JUDGES = ("gold", "rm")  # the machine judges: they score every response
ALL_JUDGES = (*JUDGES, "people")
VERDICT_NAMES = {1: "a", 0: "tie", -1: "b"}  # stored as `winner`
PROMPT_SEED_OFFSET = 977  # eval prompts: toyworld.sample_prompts(n, seed=977 + seed)


class EvalError(ValueError):
    """A comparison that cannot be run (the message says why; the CLI exits 2)."""


# ---------------------------------------------------------------------------------------
# Verdicts, rates and the bootstrap
# ---------------------------------------------------------------------------------------
def verdicts(score_a: Sequence[float], score_b: Sequence[float], tol: float = 1e-6) -> np.ndarray:
    """+1 where A scored higher by more than tol, -1 where B did, 0 (tie) otherwise."""
    diff = np.asarray(score_a, dtype=float) - np.asarray(score_b, dtype=float)
    return np.where(diff > tol, 1, np.where(diff < -tol, -1, 0)).astype(np.int8)


def rates(v: Sequence[int]) -> dict:
    """Counts and rates of a list of verdicts (+1 A wins, 0 tie, -1 B wins)."""
    v = np.asarray(v)
    n = len(v)
    if n == 0:
        raise EvalError("no verdicts: nothing was judged")
    wins, ties, losses = int((v == 1).sum()), int((v == 0).sum()), int((v == -1).sum())
    if wins + ties + losses != n:
        raise ValueError("verdicts must be +1, 0 or -1")
    return {"n": n, "wins": wins, "ties": ties, "losses": losses,
            "win_rate": wins / n, "tie_rate": ties / n, "loss_rate": losses / n,
            "margin": (wins - losses) / n}


def bootstrap_ci(x, n_resamples: int = 2000, seed: int = 0, level: float = 0.95,
                 chunk: int = 250) -> np.ndarray:
    """Percentile bootstrap interval of the mean of x over its rows.

    x: shape (n,) or (n, k) (k statistics that are means of per-item values, resampled
    together). Returns [lo, hi] (shape (2,)) or (k, 2). Each of the R resamples draws n
    row indices uniformly with replacement (numpy Generator seeded with `seed`); the
    interval is the ((1 - level)/2, (1 + level)/2) quantiles of the R resampled means.
    """
    x = np.asarray(x, dtype=float)
    flat = x.ndim == 1
    x2 = x[:, None] if flat else x
    n = len(x2)
    if n == 0:
        raise EvalError("cannot bootstrap an empty sample")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    rng = np.random.default_rng(seed)
    means = np.empty((n_resamples, x2.shape[1]))
    for start in range(0, n_resamples, chunk):  # (chunk, n) indices at a time: bounded memory
        r = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(r, n))
        means[start:start + r] = x2[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    ci = np.quantile(means, [alpha, 1.0 - alpha], axis=0).T  # (k, 2)
    return ci[0] if flat else ci


def summarize(v: Sequence[int], n_resamples: int = 2000, seed: int = 0) -> dict:
    """rates(v) plus 95% bootstrap intervals of the win, tie and loss rates and the margin."""
    v = np.asarray(v)
    out = rates(v)
    columns = np.stack([v == 1, v == 0, v == -1, v], axis=1).astype(float)
    ci = bootstrap_ci(columns, n_resamples, seed)
    for key, (lo, hi) in zip(("win_rate", "tie_rate", "loss_rate", "margin"), ci):
        out[f"{key}_ci95"] = [float(lo), float(hi)]
    return out


def agreement(v1: Sequence[int], v2: Sequence[int], n_resamples: int = 2000,
              seed: int = 0) -> dict:
    """How often two judges give the same verdict on the same pairs (see the module doc).

    `confusion[x][y]` counts the pairs judge 1 called x and judge 2 called y (x, y in
    "a", "tie", "b"). decisive_agreement is None when no pair is decisive for both.
    """
    from .labels import cohen_kappa

    v1, v2 = np.asarray(v1), np.asarray(v2)
    if len(v1) != len(v2) or len(v1) == 0:
        raise ValueError("need two equally long, non-empty verdict lists")
    same = (v1 == v2).astype(float)
    decisive = (v1 != 0) & (v2 != 0)
    n_dec = int(decisive.sum())
    confusion = {VERDICT_NAMES[x]: {VERDICT_NAMES[y]: int(((v1 == x) & (v2 == y)).sum())
                                    for y in (1, 0, -1)} for x in (1, 0, -1)}
    lo, hi = bootstrap_ci(same, n_resamples, seed)
    return {"n": len(v1), "agreement": float(same.mean()), "agreement_ci95": [float(lo), float(hi)],
            "decisive": n_dec,
            "decisive_agreement": float(same[decisive].mean()) if n_dec else None,
            "kappa": cohen_kappa(v1.tolist(), v2.tolist()), "confusion": confusion}


# ---------------------------------------------------------------------------------------
# Policies: names, folders and PPO run folders
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyRef:
    """A policy to compare: `name` as given, `key` its identity (a toy preset such as
    "toy", or the absolute path of the model folder), `load` what load_policy gets."""

    name: str
    key: str
    load: str

    @property
    def label(self) -> str:
        return label_of(self.key)


def label_of(key: str) -> str:
    """A short display name: "toy", "ppo-1" for <...>/ppo-1/policy, "ppo-1/iter-20" for
    a checkpoint, else the folder's name."""
    if not os.path.isabs(key):
        return key
    p = Path(key)
    if p.name == "policy":
        return p.parent.name
    if p.parent.name == "checkpoints":
        return f"{p.parent.parent.name}/{p.name}"
    return p.name


def _looks_like_path(name: str) -> bool:
    """A name meant as a path (never a hub id)."""
    return name.startswith(("/", "./", "../", "~")) or name in (".", "..")


def _is_model_folder(folder: Path) -> bool:
    """A folder saved with save_pretrained: its config.json names a model_type."""
    from .files import read_json

    config = read_json(folder / "config.json")
    return isinstance(config, dict) and "model_type" in config


def resolve_policy(name: str) -> PolicyRef:
    """Where a policy named on the command line lives.

    Accepts a toy preset ("toy", "toy-s"), a folder saved with save_pretrained, a PPO run
    folder (its policy/ subfolder), a run name under <data home>/runs, or a hub id (tried
    when loading). Raises EvalError for a folder that holds no policy and for a path that
    does not exist.
    """
    from .models import resolve_toy
    from .paths import runs_dir

    name = str(name).strip()
    if not name:
        raise EvalError("empty policy name: give 'toy', a model folder or a PPO run folder")
    size = resolve_toy(name)
    if size is not None:
        key = "toy" if size == "xs" else f"toy-{size}"
        return PolicyRef(name, key, key)
    path = Path(name).expanduser()
    if not path.exists() and not _looks_like_path(name) and (runs_dir() / name).is_dir():
        path = runs_dir() / name  # a run name: moss-lab eval --b ppo-20250101-120000
    if path.is_dir():
        for folder in (path / "policy", path):  # a run folder's config.json is the run's
            if _is_model_folder(folder):
                folder = folder.resolve()
                return PolicyRef(name, str(folder), str(folder))
        checkpoints = sorted((path / "checkpoints").glob("iter-*")) if (path / "checkpoints").is_dir() else []
        hint = (f"; its checkpoints: {', '.join(str(c) for c in checkpoints[-3:])}"
                if checkpoints else "")
        raise EvalError(f"policy {name!r}: the folder {path} holds no policy (no config.json, "
                        f"and no policy/ subfolder of a finished PPO run){hint}")
    if path.exists():
        raise EvalError(f"policy {name!r}: {path} is a file, not a model folder")
    if _looks_like_path(name) or len(Path(name).parts) > 2:
        raise EvalError(f"policy {name!r} not found: no such folder")
    return PolicyRef(name, name, name)  # a hub id: load_policy says if it cannot be loaded


def load(ref: PolicyRef, device: str | None = None, threads: int | None = None):
    """(model, tokenizer) of a resolved policy; EvalError if it cannot be loaded."""
    from .models import ModelNotFoundError, load_policy

    try:
        return load_policy(ref.load, device=device, threads=threads)
    except ModelNotFoundError as err:
        raise EvalError(f"policy {ref.name!r} not found: {err}") from err
    except (OSError, ValueError) as err:
        raise EvalError(f"policy {ref.name!r} could not be loaded from {ref.load}: {err}") from err


def resolve_reward(spec: str | None) -> Path:
    """The reward-model folder of the rm judge: "toy" (default; trained once and cached),
    a folder saved by moss-lab train-rm, or its run folder (model/ subfolder)."""
    from .ppo.toy import toy_reward_model_dir

    if spec in (None, "", "toy"):
        return toy_reward_model_dir().resolve()
    path = Path(spec).expanduser()
    if not _is_model_folder(path) and not _is_model_folder(path / "model"):
        raise EvalError(f"reward model {spec!r} not found: give 'toy' or a folder saved by "
                        "moss-lab train-rm (its run folder or its model/ subfolder)")
    return path.resolve()


def parse_judges(text: str | Sequence[str]) -> tuple[str, ...]:
    """"gold", "rm", "people", "gold,rm,people" (or a list) -> a tuple of distinct judges,
    in order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    judges = tuple(dict.fromkeys(j.strip().lower() for j in items if j.strip()))
    bad = [j for j in judges if j not in ALL_JUDGES]
    if not judges or bad:
        raise EvalError(f"judge must be gold, rm or people, or several joined by commas "
                        f"(e.g. gold,rm) (not {text!r})")
    return judges


def check_n(n: int) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= MAX_PROMPTS:
        raise EvalError(f"the number of prompts must be between 1 and {MAX_PROMPTS:,} "
                        f"(got {n!r}); 200 gives a win rate to about +-7 points")
    return int(n)


# ---------------------------------------------------------------------------------------
# Sampling and judging
# ---------------------------------------------------------------------------------------
def sample_seed(seed: int, side: str, batch: int) -> int:
    """The torch seed of one sampling batch: distinct for A and B and for every batch."""
    return seed * 1_000_003 + 2 * batch + (side == "b")


def sample_responses(model, tokenizer, prompts: list[str], seed: int, side: str,
                     max_new_tokens: int = 20, temperature: float = 1.0, top_p: float = 1.0,
                     batch_size: int = 64, on_progress: Callable[[int], None] | None = None
                     ) -> tuple[list[str], list[bool]]:
    """One response per prompt with moss_lab.sampling.generate; (responses, ended)."""
    from .sampling import generate

    responses: list[str] = []
    ended: list[bool] = []
    for k, start in enumerate(range(0, len(prompts), batch_size)):
        chunk = prompts[start:start + batch_size]
        s = generate(model, tokenizer, chunk, max_new_tokens=max_new_tokens,
                     temperature=temperature, top_p=top_p, seed=sample_seed(seed, side, k))
        responses += s.responses
        ended += [bool(e) for e in s.ended]
        if on_progress:
            on_progress(len(chunk))
    return responses, ended


def gold_judge(prompts: list[str], responses: list[str], ended: list[bool]) -> np.ndarray:
    """toyworld.gold_score(prompt, response, ended).total of each response."""
    from .toyworld import gold_score

    return np.array([gold_score(p, r, e).total for p, r, e in zip(prompts, responses, ended)])


def rm_judge(reward_model, tokenizer, prompts: list[str], responses: list[str],
             batch_size: int = 256, on_progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The reward model's score of each response (moss_lab.scoring.score)."""
    from .scoring import score

    out = []
    for start in range(0, len(prompts), batch_size):
        end = start + batch_size
        out.append(score(reward_model, tokenizer, prompts[start:end], responses[start:end]).numpy())
        if on_progress:
            on_progress(len(prompts[start:end]))
    return np.concatenate(out).astype(float)


# ---------------------------------------------------------------------------------------
# A comparison
# ---------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """Everything one comparison produced; summary() is what the CLI prints."""

    a: PolicyRef
    b: PolicyRef
    judges: tuple[str, ...]
    prompts: list[str]
    responses_a: list[str]
    responses_b: list[str]
    ended_a: list[bool]
    ended_b: list[bool]
    scores: dict[str, tuple[np.ndarray, np.ndarray]]  # judge -> (scores of A, scores of B)
    verdicts: dict[str, np.ndarray]                     # judge -> +1 / 0 / -1 per prompt
    settings: dict = field(default_factory=dict)        # seed, max_new_tokens, reward, ...
    n_resamples: int = 2000

    def by_judge(self) -> dict:
        seed = self.settings.get("seed", 0)
        out = {}
        for judge in self.judges:  # the machine judges (people vote later)
            s_a, s_b = self.scores[judge]
            out[judge] = {**summarize(self.verdicts[judge], self.n_resamples, seed),
                          "mean_score_a": float(s_a.mean()), "mean_score_b": float(s_b.mean())}
        return out

    def agreements(self) -> dict:
        seed = self.settings.get("seed", 0)
        return {f"{j1}~{j2}": agreement(self.verdicts[j1], self.verdicts[j2], self.n_resamples, seed)
                for i, j1 in enumerate(self.judges) for j2 in self.judges[i + 1:]}

    def summary(self) -> dict:
        """One JSON-able object. Top level: the first judge's figures (`judge` names it), so
        `--judge gold` and `--judge rm` read alike; `by_judge` has every judge's, and
        `agreement` every pair of judges' ("gold~rm"; empty for one judge)."""
        by_judge = self.by_judge()
        first = self.judges[0] if self.judges else None  # None: people only, no rates yet
        return {"a": self.a.key, "b": self.b.key, "judge": first, "judges": list(self.judges),
                "n": len(self.prompts), **by_judge.get(first, {}), "by_judge": by_judge,
                "agreement": self.agreements(),
                "mean_length_a": float(np.mean([len(r.split()) for r in self.responses_a])),
                "mean_length_b": float(np.mean([len(r.split()) for r in self.responses_b])),
                **{k: v for k, v in self.settings.items() if k not in ("a", "b")}}

    def rows(self, name: str) -> list[dict]:
        """The per-prompt judgements as stored: one row per prompt and judge."""
        created = time.strftime("%Y-%m-%dT%H:%M:%S")
        rows = []
        for judge in self.judges:
            s_a, s_b = self.scores[judge]
            for i, prompt in enumerate(self.prompts):
                rows.append({
                    "eval": name, "judge": judge, "index": i, "a": self.a.key, "b": self.b.key,
                    "winner": VERDICT_NAMES[int(self.verdicts[judge][i])],
                    "score_a": float(s_a[i]), "score_b": float(s_b[i]), "prompt": prompt,
                    "response_a": self.responses_a[i], "response_b": self.responses_b[i],
                    "ended_a": self.ended_a[i], "ended_b": self.ended_b[i],
                    "reward": self.settings.get("reward") if judge == "rm" else None,
                    "seed": self.settings.get("seed"), "created_at": created})
        return rows


def prepare(a: str, b: str, n: int, judges: str | Sequence[str] = ("gold",),
            prompts: list[str] | None = None) -> tuple[PolicyRef, PolicyRef, tuple[str, ...]]:
    """Check a comparison before any model is loaded: (ref A, ref B, judges)."""
    from .toyworld import has_gold

    check_n(n)
    judges = parse_judges(judges)
    if "people" in judges and n > MAX_PEOPLE_PAIRS:
        raise EvalError(f"{n:,} pairs are too many for people to label: ask them about "
                        f"{MAX_PEOPLE_PAIRS:,} at most (e.g. --prompts 50)")
    ref_a, ref_b = resolve_policy(a), resolve_policy(b)
    if ref_a.key == ref_b.key:
        raise EvalError(f"A and B are the same policy ({ref_a.key}): compare two different "
                        "policies (e.g. --a toy --b <a PPO run folder>)")
    if prompts is not None:
        if len(prompts) < n:
            raise EvalError(f"asked for {n} prompts but only {len(prompts)} were given")
        if "gold" in judges and not all(has_gold(p) for p in prompts[:n]):
            raise EvalError("the gold judge needs toy-world prompts; use --judge rm")
    return ref_a, ref_b, judges


def compare(a: str, b: str, n: int = 200, judges: str | Sequence[str] = ("gold",),
            reward: str | None = "toy", prompts: list[str] | None = None, seed: int = 0,
            max_new_tokens: int = 20, temperature: float = 1.0, top_p: float = 1.0,
            batch_size: int = 64, tie_tol: float = 1e-6, n_resamples: int = 2000,
            device: str | None = None, threads: int | None = None,
            on_progress: Callable[[str, int], None] | None = None) -> Comparison:
    """Policy A against policy B on n prompts (toy prompts drawn with `seed` unless given).

    Every input is checked, and every model loaded, before the first response is sampled.
    "people" among the judges is checked here and left to save_with_people (the result's
    judges are the machine judges).
    `on_progress(stage, k)` is told of k more responses sampled ("sample a", "sample b")
    or scored ("judge rm"). max_new_tokens defaults to the toy-fast PPO preset's 20, the
    length a toy PPO run learned to answer in.
    """
    from .toyworld import sample_prompts

    ref_a, ref_b, judges = prepare(a, b, n, judges, prompts)
    judges = tuple(j for j in judges if j in JUDGES)
    prompts = list(prompts[:n]) if prompts is not None else sample_prompts(
        n, seed=PROMPT_SEED_OFFSET + seed)
    rm_path = resolve_reward(reward) if "rm" in judges else None
    model_a, tok_a = load(ref_a, device, threads)
    model_b, tok_b = load(ref_b, device, threads)
    rm = None
    if rm_path is not None:
        from .reward import load_reward_model

        try:
            rm = load_reward_model(rm_path, device=device)
        except (OSError, ValueError) as err:
            raise EvalError(f"reward model {rm_path} could not be loaded: {err}") from err

    def tell(stage):
        return (lambda k: on_progress(stage, k)) if on_progress else None

    kw = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
              "batch_size": batch_size}
    resp_a, ended_a = sample_responses(model_a, tok_a, prompts, seed, "a",
                                       on_progress=tell("sample a"), **kw)
    resp_b, ended_b = sample_responses(model_b, tok_b, prompts, seed, "b",
                                       on_progress=tell("sample b"), **kw)
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for judge in judges:
        if judge == "gold":
            scores[judge] = (gold_judge(prompts, resp_a, ended_a), gold_judge(prompts, resp_b, ended_b))
        else:
            rm_model, rm_tok = rm
            scores[judge] = (rm_judge(rm_model, rm_tok, prompts, resp_a, on_progress=tell("judge rm")),
                             rm_judge(rm_model, rm_tok, prompts, resp_b, on_progress=tell("judge rm")))
    settings = {"seed": seed, "max_new_tokens": max_new_tokens, "temperature": temperature,
                "top_p": top_p, "tie_tol": tie_tol, "n_resamples": n_resamples,
                "reward": str(rm_path) if rm_path is not None else None}
    return Comparison(ref_a, ref_b, judges, prompts, resp_a, resp_b, ended_a, ended_b, scores,
                      {j: verdicts(*scores[j], tol=tie_tol) for j in judges}, settings, n_resamples)


# ---------------------------------------------------------------------------------------
# Stored judgements: <data home>/evals/<name>.jsonl
# ---------------------------------------------------------------------------------------
def evals_dir(root: str | Path | None = None) -> Path:
    """The folder of stored judgements (created if missing)."""
    from .paths import data_home

    path = Path(root) if root is not None else data_home() / "evals"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_name(name: str | None, root: str | Path | None = None) -> str:
    """A fresh eval name (eval-<time> if None); EvalError if that file exists already."""
    from .run_folder import new_run_name

    folder = evals_dir(root)
    if name is None:
        base = new_run_name("eval", root=folder)
        name, k = base, 1
        while (folder / f"{name}.jsonl").exists():
            k += 1
            name = f"{base}-{k}"
        return name
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise EvalError(f"--name {name!r}: give a plain file name (letters, digits, - and _)")
    if (folder / f"{name}.jsonl").exists():
        raise EvalError(f"--name {name!r}: {folder / (name + '.jsonl')} exists already; "
                        "choose another name (judgements are never overwritten)")
    return name


def save(result: Comparison, name: str | None = None, root: str | Path | None = None) -> Path:
    """Write every per-prompt judgement of `result` to <evals>/<name>.jsonl, atomically
    (the whole file at once: a reader never sees half an eval)."""
    from . import files

    name = check_name(name, root)
    text = "".join(json.dumps(row) + "\n" for row in result.rows(name))
    return files.write_text(evals_dir(root) / f"{name}.jsonl", text)


def read_judgements(judge: str | None = None, root: str | Path | None = None,
                    reward: str | None = None) -> list[dict]:
    """Every stored judgement (rows of all <evals>/*.jsonl), optionally of one judge and,
    for rm, of one reward-model folder."""
    from . import files

    rows = []
    for path in sorted(evals_dir(root).glob("*.jsonl")):
        rows += files.read_jsonl(path)
    if judge is not None:
        rows = [r for r in rows if r.get("judge") == judge]
    if reward is not None:
        want = str(Path(reward).expanduser().resolve())
        rows = [r for r in rows if r.get("reward") == want]
    return [r for r in rows if r.get("winner") in ("a", "b", "tie") and r.get("a") and r.get("b")]


def ci_text(lo: float, hi: float) -> str:
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def report_lines(summary: dict) -> list[str]:
    """A few readable lines about a summary (the CLI prints them before the JSON line)."""
    lines = [(f"A = {label_of(summary['a'])}  vs  B = {label_of(summary['b'])}  "
             f"({summary['n']} prompts, one response each)")]
    for judge, s in summary["by_judge"].items():
        lines.append(
            f"  {judge:4s}  A wins {100 * s['win_rate']:5.1f}% {ci_text(*s['win_rate_ci95'])}  "
            f"tie {100 * s['tie_rate']:5.1f}% {ci_text(*s['tie_rate_ci95'])}  "
            f"B wins {100 * s['loss_rate']:5.1f}% {ci_text(*s['loss_rate_ci95'])}   "
            f"mean score A {s['mean_score_a']:.3f}, B {s['mean_score_b']:.3f}")
    for pair, g in summary["agreement"].items():
        dec = "n/a" if g["decisive_agreement"] is None else f"{100 * g['decisive_agreement']:.1f}%"
        lines.append(f"  {pair}: same verdict on {100 * g['agreement']:.1f}% "
                     f"{ci_text(*g['agreement_ci95'])} of pairs; on the {g['decisive']} pairs "
                     f"neither called a tie: {dec}; kappa {g['kappa']:.3f}")
    return lines


# ---------------------------------------------------------------------------------------
# People as a judge: blind pairs in the Label tab, verdicts from the stored votes
# ---------------------------------------------------------------------------------------
def people_pairs(result: Comparison, name: str) -> list:
    """The blind pairs of an eval: response_a = A's, response_b = B's answer to prompt i
    (the Label tab shows them in a random left/right order), sources = the policies' keys,
    id "<name>/<i>/<random>" (unique even if an eval file was deleted and its name reused).
    Prompts on which A and B answered the same, or one answered nothing, are no comparison
    and are not asked."""
    import uuid

    from .labels import Pair

    return [Pair(f"{name}/{i}/{uuid.uuid4().hex[:6]}", p, ra, rb, ea, eb, result.a.key, result.b.key)
            for i, (p, ra, rb, ea, eb) in enumerate(zip(result.prompts, result.responses_a,
                                                        result.responses_b, result.ended_a,
                                                        result.ended_b))
            if ra != rb and ra.strip() and rb.strip()]


def save_with_people(result: Comparison, store, name: str | None = None,
                     root: str | Path | None = None) -> tuple[Path, int]:
    """save(result) plus the people's pairs: one "people" row per queued pair in
    <evals>/<name>.jsonl (winner "pending", its pair_id) and the pairs in the label store,
    all or nothing (the file is removed if the pairs cannot be stored). (path, pairs queued)."""
    from . import files
    from .labels import add_pairs

    name = check_name(name, root)
    pairs = people_pairs(result, name)
    index = {p.id: int(p.id.split("/")[-2]) for p in pairs}
    created = time.strftime("%Y-%m-%dT%H:%M:%S")
    people = [{"eval": name, "judge": "people", "index": index[p.id], "a": result.a.key,
               "b": result.b.key, "winner": "pending", "pair_id": p.id, "prompt": p.prompt,
               "response_a": p.response_a, "response_b": p.response_b, "ended_a": p.ended_a,
               "ended_b": p.ended_b, "seed": result.settings.get("seed"), "created_at": created}
              for p in pairs]
    text = "".join(json.dumps(row) + "\n" for row in result.rows(name) + people)
    path = files.write_text(evals_dir(root) / f"{name}.jsonl", text)
    try:
        add_pairs(store, pairs)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, len(pairs)


def policy_key(source: str | None) -> str | None:
    """The key of a policy named in a vote's source_a/source_b ("toy", a folder) as
    resolve_policy gives it, so that Compare's picks and eval pairs name policies alike."""
    if not source:
        return None
    try:
        return resolve_policy(source).key
    except EvalError:
        return str(source)


def all_rows(root: str | Path | None = None) -> list[dict]:
    from . import files

    rows = []
    for path in sorted(evals_dir(root).glob("*.jsonl")):
        rows += files.read_jsonl(path)
    return rows


def vote_sign(vote: dict, key_a: str, keys: dict) -> int:
    """+1: the vote prefers policy key_a's response; -1: the other's; 0: tie or both bad."""
    if vote["choice"] not in ("A", "B"):
        return 0
    winner = keys[vote["source_a"] if vote["choice"] == "A" else vote["source_b"]]
    return 1 if winner == key_a else -1


def people_verdicts(name: str | None = None, a: str | None = None, b: str | None = None,
                    store=None, root: str | Path | None = None, n_resamples: int = 2000,
                    seed: int = 0) -> dict:
    """The people's verdicts so far on an eval's pairs (`name`), or on every pair of two
    policies (`a`, `b`: all evals' pairs and Compare picks between them), plus the Compare
    picks between the same two policies in both cases.

    Per pair: v = sign(sum of the votes' s), s = +1 for A's response, -1 for B's, 0 tie or
    both bad (skips ignored); pairs with no vote yet are `pending`. The rates and intervals
    are summarize(v) (as for the other judges) with `votes` and `annotators` counted.
    `agreement`: people against gold (toy prompts: toyworld's gold score of the two
    responses) and against the reward model (where the eval stored rm judgements of the
    same prompt), on the pairs people judged.
    """
    from .labels import JUDGED, LabelStore

    rows = all_rows(root)
    if name is not None:
        mine = [r for r in rows if r.get("eval") == name]
        if not mine:
            raise EvalError(f"no eval named {name!r} in {evals_dir(root)}: give a stored eval's "
                            "name (moss-lab eval --judge people --name ...)")
        key_a, key_b = mine[0]["a"], mine[0]["b"]
        asked = {r["pair_id"] for r in mine if r.get("judge") == "people"}
    else:
        if a is None or b is None:
            raise EvalError("give an eval name, or the two policies a and b")
        key_a, key_b = resolve_policy(a).key, resolve_policy(b).key
        if key_a == key_b:
            raise EvalError(f"A and B are the same policy ({key_a})")
        asked = {r["pair_id"] for r in rows if r.get("judge") == "people"
                 and {r.get("a"), r.get("b")} == {key_a, key_b}}
    own = store is None
    store = LabelStore() if own else store
    try:
        votes = store.votes()
        keys: dict = {}
        for v in votes:
            for source in (v["source_a"], v["source_b"]):
                if source not in keys:
                    keys[source] = policy_key(source)
        sums: dict[str, int] = {}
        voters: set = set()
        n_votes = 0
        for v in votes:
            compare_pick = (v["source"] == "compare" and v["source_a"] != v["source_b"]
                            and {keys[v["source_a"]], keys[v["source_b"]]} == {key_a, key_b})
            if v["choice"] not in JUDGED or not (v["pair_id"] in asked or compare_pick):
                continue
            sums[v["pair_id"]] = sums.get(v["pair_id"], 0) + vote_sign(v, key_a, keys)
            voters.add(v["annotator"])
            n_votes += 1
        pairs = {pid: store.get_pair(pid) for pid in sums}
    finally:
        if own:
            store.close()
    judged = list(sums)
    out = {"eval": name, "a": key_a, "b": key_b, "judge": "people", "queued": len(asked),
           "pending": len(asked - set(judged)), "votes": n_votes, "annotators": len(voters),
           "pairs": len(judged), "agreement": {}}
    if not judged:
        return {**out, "n": 0}
    v_people = np.sign([sums[p] for p in judged]).astype(np.int8)
    out.update(summarize(v_people, n_resamples, seed))
    for judge, other in (("gold", _gold_verdicts(judged, pairs, key_a, keys)),
                         ("rm", _stored_verdicts(judged, rows, "rm", key_a))):
        both = [i for i, p in enumerate(judged) if p in other]
        if both:
            out["agreement"][f"people~{judge}"] = agreement(
                v_people[both], [other[judged[i]] for i in both], n_resamples, seed)
    return out


def _gold_verdicts(pair_ids, pairs, key_a, keys) -> dict[str, int]:
    """Gold's verdict (+1: key_a's response scores higher) of each pair on a toy prompt."""
    from .toyworld import gold_score, has_gold

    out = {}
    for pid in pair_ids:
        pair = pairs.get(pid)
        if pair is None or not has_gold(pair.prompt):
            continue
        v = int(verdicts([gold_score(pair.prompt, pair.response_a, pair.ended_a).total],
                         [gold_score(pair.prompt, pair.response_b, pair.ended_b).total])[0])
        out[pid] = v if keys.get(pair.source_a, policy_key(pair.source_a)) == key_a else -v
    return out


def _stored_verdicts(pair_ids, rows, judge: str, key_a: str) -> dict[str, int]:
    """A stored judge's verdict on the prompt of each eval pair (same eval, same index)."""
    where = {(r["eval"], r.get("index")): r["pair_id"] for r in rows
             if r.get("judge") == "people" and r.get("pair_id") in set(pair_ids)}
    sign = {"a": 1, "tie": 0, "b": -1}
    out = {}
    for r in rows:
        pid = where.get((r.get("eval"), r.get("index")))
        if r.get("judge") == judge and pid is not None and r.get("winner") in sign:
            out[pid] = sign[r["winner"]] * (1 if r["a"] == key_a else -1)
    return out


def people_lines(s: dict) -> list[str]:
    """A few readable lines about people_verdicts()."""
    who = "person" if s["annotators"] == 1 else "people"
    head = (f"people: A = {label_of(s['a'])} vs B = {label_of(s['b'])}: {s['votes']} votes by "
            f"{s['annotators']} {who} on {s['pairs']} pairs; {s['pending']} of "
            f"{s['queued']} queued pairs still wait for a vote")
    if not s["n"]:
        return [head, "  no votes yet: label the pairs in the app's Label tab"]
    lines = [head, (f"  people A wins {100 * s['win_rate']:5.1f}% {ci_text(*s['win_rate_ci95'])}  "
                    f"tie {100 * s['tie_rate']:5.1f}% {ci_text(*s['tie_rate_ci95'])}  "
                    f"B wins {100 * s['loss_rate']:5.1f}% {ci_text(*s['loss_rate_ci95'])}")]
    for pair, g in s["agreement"].items():
        lines.append(f"  {pair}: same verdict on {100 * g['agreement']:.1f}% "
                     f"{ci_text(*g['agreement_ci95'])} of {g['n']} pairs")
    return lines
