"""Benchmark: reward models from ratings vs from pairs, at equal labelling effort.

    python benchmarks/ratings_vs_pairs.py [--budgets 500 2000] [--seeds 0 1]
                                          [--rater-noise 0.5] [--annotator-noise 0.6]

Labelling effort is counted in responses read (see moss_lab/rating_reward.py): a budget
of B responses buys B ratings (one response read, five numbers given) or B/2 pairs (two
responses read, one choice). The pairs are also given at an equal count of labels (B
pairs, twice the reading). For each budget and seed, trained on the toy base model's own
samples, scored on the same held-out pairs (agreement with the gold score):

    bt_equal_reading   Bradley-Terry, RewardConfig() defaults, B/2 pairs
    bt_equal_count     Bradley-Terry, RewardConfig() defaults, B pairs
    linear             ridge regression of the overall rating on linear_features, B ratings
    regression         the transformer with an MSE regression head, RatingRewardConfig()
                       defaults, B ratings
    regression_aspects the same with per-aspect heads (aspect_coef 1)

Also reported: how often the labellers themselves agree with gold on the held-out pairs
(the annotator's label; the rater's overall stars, a tie counted as half). The last line
is JSON. The figures (2 seeds) are in moss_lab/rating_reward.py's docstring; the run
took 1417 s for both seeds on the 2-core machine shared with 7 other jobs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from moss_lab import preferences, rating_reward  # noqa: E402
from moss_lab.models import load_policy  # noqa: E402
from moss_lab.ratings import SimulatedRater, toy_ratings  # noqa: E402
from moss_lab.reward import RewardConfig, train_reward_model  # noqa: E402
from moss_lab.toyworld import SimulatedAnnotator, gold_score  # noqa: E402


def rater_agreement(rater: SimulatedRater, pairs) -> float:
    """How often the rater's overall stars order a held-out pair as gold does (tie: 1/2)."""
    agree = n = 0.0
    for p in pairs:
        gold = (gold_score(p.prompt, p.chosen, p.chosen_ended).total
                - gold_score(p.prompt, p.rejected, p.rejected_ended).total)
        if abs(gold) <= 1e-9:
            continue
        d = (rater.rate(p.prompt, p.chosen, p.chosen_ended).overall
             - rater.rate(p.prompt, p.rejected, p.rejected_ended).overall)
        n += 1
        agree += 0.5 if d == 0 else float((d > 0) == (gold > 0))
    return agree / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=int, nargs="+", default=[500, 2000],
                    help="responses read per labelling budget")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--eval-pairs", type=int, default=1000)
    ap.add_argument("--rater-noise", type=float, default=0.5)
    ap.add_argument("--annotator-noise", type=float, default=0.6)
    ap.add_argument("--no-aspects", action="store_true", help="skip the per-aspect-heads model")
    args = ap.parse_args()
    torch.set_num_threads(1)
    policy, tok = load_policy("toy", threads=1)
    top = max(args.budgets)
    results, start = [], time.perf_counter()
    for seed in args.seeds:
        held_out = preferences.toy_pairs(policy, tok, args.eval_pairs,
                                         SimulatedAnnotator(args.annotator_noise, seed=seed + 1),
                                         seed=seed + 10_000)
        pairs = preferences.toy_pairs(policy, tok, top, SimulatedAnnotator(args.annotator_noise, seed=seed),
                                      seed=seed)
        rated = toy_ratings(policy, tok, top, SimulatedRater(args.rater_noise, seed=seed), seed=seed + 20_000)
        row = {"seed": seed,
               "annotator_acc_gold": round(preferences.gold_agreement(held_out), 4),
               "rater_acc_gold": round(rater_agreement(SimulatedRater(args.rater_noise, seed=seed + 1), held_out), 4)}
        print(json.dumps(row), flush=True)
        for budget in args.budgets:
            acc, secs = {}, {}

            def bt(n_pairs):
                t0 = time.perf_counter()
                _, _, final = train_reward_model(pairs[:n_pairs], RewardConfig(seed=seed, eval_every_epoch=False),
                                                 eval_pairs=held_out)
                return final["acc_gold"], time.perf_counter() - t0

            def regression(aspects):
                t0 = time.perf_counter()
                config = rating_reward.RatingRewardConfig(seed=seed, eval_fraction=0.0, aspect_heads=aspects,
                                                          eval_every_epoch=False)
                _, _, final = rating_reward.train_rating_model(rated[:budget], config, eval_pairs=held_out)
                return final["acc_gold"], time.perf_counter() - t0

            acc["bt_equal_reading"], secs["bt_equal_reading"] = bt(budget // 2)
            acc["bt_equal_count"], secs["bt_equal_count"] = bt(budget)
            t0 = time.perf_counter()
            linear = rating_reward.fit_linear_reward(rated[:budget])
            acc["linear"] = rating_reward.gold_agreement(linear.score, held_out)
            secs["linear"] = time.perf_counter() - t0
            acc["regression"], secs["regression"] = regression(False)
            if not args.no_aspects:
                acc["regression_aspects"], secs["regression_aspects"] = regression(True)
            out = {"seed": seed, "budget_responses": budget,
                   "acc_gold": {k: round(v, 4) for k, v in acc.items()},
                   "seconds": {k: round(v, 1) for k, v in secs.items()}}
            results.append(out)
            print(json.dumps(out), flush=True)
        results.append(row)
    print(json.dumps({"budgets": args.budgets, "seeds": args.seeds, "eval_pairs": args.eval_pairs,
                      "rater_noise": args.rater_noise, "annotator_noise": args.annotator_noise,
                      "seconds": round(time.perf_counter() - start, 1), "results": results}))


if __name__ == "__main__":
    main()
