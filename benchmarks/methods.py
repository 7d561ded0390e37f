"""Benchmark: PPO, DPO, GRPO, RLOO and best-of-n on the toy world, one after the other.

    .venv/bin/python benchmarks/methods.py [--budget 60] [--seed 0] [--threads 1]
                                           [--only ppo dpo ...]

Every method starts from the same toy base model, optimises the same toy reward model
(DPO: simulated toy labels, the data that reward model was trained on) and is measured by
the same evaluation: moss_lab.methods.training.Evaluator, one sampled response to each
of 64 fixed toy prompts, scored by the gold score (reward/gold) and by
objective/kl = k1 to the base model summed over each response, on the policy's own
samples, averaged. Each method runs with its library defaults, for the same wall-time
budget:

    budget     every method is called with should_stop() = "budget seconds have passed
               since the call" and enough steps to fill it (PPO 1000 iterations, GRPO and
               RLOO 1000 steps, DPO 20 epochs over its 1024 pairs); the clock starts
               before the call, so loading, pair sampling, critic pre-training and the
               methods' evaluations count. A step that has started finishes, so a run
               may exceed the budget by one step and one evaluation.
    ppo        toy-fast preset (reward "toy"), a checkpoint every 5 iterations; the
               checkpoints are evaluated after the run by the same Evaluator (not timed,
               `eval_s`), so PPO's gold comes from the same prompts as everyone else's
               rather than from its rollout batches
    dpo        DPOTrainConfig() (1024 simulated toy pairs, beta 0.1), evaluated every 5 steps
    grpo/rloo  GRPOTrainConfig() / RLOOTrainConfig() with reward "toy", every 5 steps
    best_of_n  BestOfNConfig() with ns 1..64: no training, so no budget to fill (its
               seconds are the sampling and scoring of 64 candidates per prompt);
               objective/kl is the analytic log n - (n - 1) / n

Per method, in the final JSON line:

    gold_start   gold of the step-0 evaluation: the base model, the same draw for every
                 method but best-of-n, whose step 0 is its n = 1 rung (other samples)
    gold_best    the best evaluation's gold
    kl_at_best   objective/kl of that evaluation
    seconds      wall time of the call (for PPO without the evaluation of its checkpoints)
    steps        optimiser steps (PPO: iterations; best-of-n: rungs of the ladder)
    step_best    the step of the best evaluation (best-of-n: n_best, the best rung's n)
    eval_s       seconds spent in the evaluations (inside `seconds` but for PPO's)

Measured here (`.venv/bin/python benchmarks/methods.py`: 2 CPU cores shared with other
jobs, load 3.8-4.9, one thread, seed 0, budget 60 s; about 5 minutes in all):

    ppo        gold -1.96 -> 1.73 at KL 6.0 (iteration 60 of 84)   61 s
    dpo        gold -1.96 -> 0.89 at KL 2.5 (step 25 of 141)       61 s
    grpo       gold -1.96 -> 1.60 at KL 4.8 (step 40 of 72)        61 s
    rloo       gold -1.96 -> 2.04 at KL 5.1 (step 72 of 72)        61 s
    best_of_n  gold -1.07 -> 0.28 at KL 2.5 (n = 32; n = 64 no better)  21 s

    {"methods": {"ppo": {"gold_start": -1.957, "gold_best": 1.734, "kl_at_best": 6.031,
     "seconds": 60.6, ...}, "dpo": {"gold_start": -1.957, "gold_best": 0.891,
     "kl_at_best": 2.49, "seconds": 60.8, ...}, "grpo": {"gold_start": -1.957,
     "gold_best": 1.602, "kl_at_best": 4.8, "seconds": 60.9, ...}, "rloo": {"gold_start":
     -1.957, "gold_best": 2.043, "kl_at_best": 5.141, "seconds": 61.2, ...}, "best_of_n":
     {"gold_start": -1.066, "gold_best": 0.277, "kl_at_best": 2.497, "seconds": 21.0,
     "n_best": 32}}, "budget_s": 60.0, "seed": 0, "threads": 1, "load_avg": [3.77, 4.94]}

How to read them: the gold score of one response has a std of ~2.4, so a mean over the 64
evaluation prompts is uncertain by about +-0.3 (the base model's mean over many samples
is about -1.5; the evaluation's fixed draw gives -1.96, best-of-n's first candidates
-1.07). The best of a run's evaluations is biased upwards by that noise, more so for
runs with more evaluations. How far each method gets in the budget depends on the load:
with a 30 s budget on the same machine PPO did 22 iterations (gold 1.18 at KL 4.2),
DPO 1 step (its 1024 pairs are sampled and labelled inside the budget), GRPO 1.23 at
KL 2.5, RLOO 1.38 at KL 3.7. DPO's gold peaks early (step 25, within the first epoch)
while its KL keeps growing on the repeated pairs; the online methods are still climbing
at 60 s.

The toy base model and toy reward model are built first if needed (not timed). Timing on
a shared 2-core machine is inflated by whatever else runs; `load_avg` says how busy it was.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

METHODS = ("ppo", "dpo", "grpo", "rloo", "best_of_n")


def budget_stop(start: float, budget: float):
    """should_stop() for a run started at `start` (perf_counter) with `budget` seconds."""
    return lambda: time.perf_counter() - start >= budget


def summary(rows: list[dict], seconds: float, **extra) -> dict:
    """gold_start, gold_best, kl_at_best, seconds (and extras) from evaluation rows."""
    best = max(rows, key=lambda r: r["reward/gold"])
    return {"gold_start": round(rows[0]["reward/gold"], 3),
            "gold_best": round(best["reward/gold"], 3),
            "kl_at_best": round(best["objective/kl"], 3),
            "seconds": round(seconds, 1),
            "steps": rows[-1]["step"], "step_best": best["step"], **extra}


def run_ppo(args, run_dir: Path, progress) -> dict:
    from moss_lab.methods.training import (
        Evaluator,
        MethodConfig,
        load_policy_for,
        make_reward_fn,
    )
    from moss_lab.models import load_policy
    from moss_lab.ppo import PPOConfig, train_ppo

    every = 5
    config = PPOConfig.preset("toy-fast", iterations=1000, seed=args.seed, threads=args.threads,
                              save_every=every, save_final=False, sample_every=1000)
    start = time.perf_counter()
    result = train_ppo(config, run_dir=run_dir, should_stop=budget_stop(start, args.budget),
                       on_metrics=lambda r: progress("ppo", r["iteration"], r))
    seconds = time.perf_counter() - start
    # the same evaluation as every other method, on the saved checkpoints (not timed)
    tick = time.perf_counter()
    eval_config = MethodConfig(seed=args.seed, threads=args.threads)
    base_model, base, tokenizer, device = load_policy_for(eval_config)
    evaluate = Evaluator(base, tokenizer, make_reward_fn("toy", eval_config, tokenizer, device),
                         eval_config)
    rows = [{"step": 0, **evaluate(base_model)[0]}]
    for folder in sorted((run_dir / "checkpoints").glob("iter-*")):
        model, _ = load_policy(str(folder), device=str(device), threads=args.threads)
        rows.append({"step": int(folder.name.split("-")[1]), **evaluate(model)[0]})
        progress("ppo eval", rows[-1]["step"], rows[-1])
    torch.set_num_threads(args.threads)
    return summary(rows, seconds, iterations=len(result.history),
                   eval_s=round(time.perf_counter() - tick, 1))


def run_trl_method(name: str, args, run_dir: Path, progress) -> dict:
    from moss_lab.methods.train_dpo import DPOTrainConfig, train_dpo
    from moss_lab.methods.train_grpo import GRPOTrainConfig, train_grpo
    from moss_lab.methods.train_rloo import RLOOTrainConfig, train_rloo

    common = {"seed": args.seed, "threads": args.threads, "save_final": False}
    train, config = {
        "dpo": (train_dpo, DPOTrainConfig(epochs=20, **common)),
        "grpo": (train_grpo, GRPOTrainConfig(steps=1000, reward="toy", **common)),
        "rloo": (train_rloo, RLOOTrainConfig(steps=1000, reward="toy", **common)),
    }[name]
    start = time.perf_counter()
    result = train(config, run_dir=run_dir, should_stop=budget_stop(start, args.budget),
                   on_metrics=lambda r: progress(name, r["step"], r))
    seconds = time.perf_counter() - start
    return summary(result.history, seconds,
                   eval_s=round(sum(r.get("time/eval_s", 0.0) for r in result.history), 1))


def run_best_of_n(args, run_dir: Path, progress) -> dict:
    from moss_lab.methods.train_best_of_n import BestOfNConfig, train_best_of_n

    config = BestOfNConfig(ns=(1, 2, 4, 8, 16, 32, 64), pool=64, reward="toy", seed=args.seed,
                           threads=args.threads)
    start = time.perf_counter()
    result = train_best_of_n(config, run_dir=run_dir,
                             on_metrics=lambda r: progress("best_of_n", r["n"], r))
    seconds = time.perf_counter() - start
    out = summary(result.history, seconds)
    out["n_best"] = result.history[out.pop("step_best") - 1]["n"]
    out.pop("steps")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0,
                        help="wall-time budget of each trained method, in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest "
                        "for the toy model on a busy laptop)")
    parser.add_argument("--only", nargs="*", choices=METHODS, default=list(METHODS),
                        help="run only these methods")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    import transformers

    from moss_lab.models import build_toy_model
    from moss_lab.ppo import PPOConfig
    from moss_lab.ppo.toy import toy_reward_model_dir

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    build_toy_model("xs")
    toy_reward_model_dir(PPOConfig().policy)  # cached after the first time (not timed)

    def progress(name, step, row):
        print(f"{name:>9} step {step:4d}  gold {row['reward/gold']:6.2f}  "
              f"score {row['reward/score']:6.2f}  kl {row['objective/kl']:6.2f}",
              file=sys.stderr, flush=True)

    load_before = os.getloadavg()[0]
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="moss-lab-bench-methods-") as tmp:
        for name in args.only:
            run_dir = Path(tmp) / name
            if name == "ppo":
                out[name] = run_ppo(args, run_dir, progress)
            elif name == "best_of_n":
                out[name] = run_best_of_n(args, run_dir, progress)
            else:
                out[name] = run_trl_method(name, args, run_dir, progress)
            print(f"{name}: {out[name]}", file=sys.stderr, flush=True)
    print(json.dumps({"methods": out, "budget_s": args.budget, "seed": args.seed,
                      "threads": args.threads,
                      "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
