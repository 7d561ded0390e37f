"""Benchmark: how fast does PPO (toy-fast preset) raise the toy world's gold score?

    .venv/bin/python benchmarks/ppo.py [--iterations 40] [--seed 0] [--set key=value ...]

Prints a progress line per iteration, then one JSON line:

    s_per_iter                 wall seconds per PPO iteration (everything, iterations 2..N)
    floor_s_per_iter           seconds per iteration spent inside model passes - sampling,
                               the policy/reference/critic/reward forward passes and the
                               training forward+backward passes - measured in the same run
                               (floor_parts_s: generate / rollout forwards / train passes)
    overhead_ratio             s_per_iter / floor_s_per_iter (target <= 1.3)
    gold_start                 mean gold score of the base policy (the first rollout)
    gold_best                  best gold of the run (3-iteration moving average)
    seconds_to_half_gold_gain  seconds from train_ppo() until the moving average first
                               reaches gold_start + (gold_best - gold_start) / 2
                               (target <= 15 s); includes setup and critic pre-training
    gold_ceiling               mean over topics of the best gold a response of at most
                               max_new_tokens tokens can score
    seconds_to_half_ceiling_gain  the same, for half the way from gold_start to the ceiling

The toy base model and toy reward model are built first if needed (not timed). Timing on
a shared 2-core machine is inflated by whatever else runs; `load_avg` says how busy it was.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

import torch


def gold_ceiling(max_tokens: int) -> float:
    """Best gold per topic over polite opening + up to 3 on-topic facts that fit, averaged."""
    from moss_lab import toyworld

    best = []
    for topic in toyworld.TOPICS:
        prompt = toyworld.format_prompt(f"tell me about {topic} .")
        top = -1e9
        for opening in [[]] + [[p] for p in toyworld.POLITE]:
            for k in range(0, 4):
                for facts in itertools.permutations(toyworld.FACTS[topic], k):
                    text = " ".join(opening + list(facts))
                    if len(text.split()) <= max_tokens - 1:  # one token for <eos>
                        top = max(top, toyworld.gold_score(prompt, text).total)
        best.append(top)
    return sum(best) / len(best)


def first_time_reaching(times, curve, target):
    for t, g in zip(times, curve):
        if g >= target:
            return t
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="toy-fast")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="PPOConfig overrides, e.g. --set kl_coef=0.1 ppo_epochs=4")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)

    from moss_lab.models import build_toy_model
    from moss_lab.ppo import PPOConfig, train_ppo
    from moss_lab.ppo.toy import toy_reward_model_dir

    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value) if value not in ("None", "none") else None
    config = PPOConfig.preset(args.preset, iterations=args.iterations, seed=args.seed,
                              save_final=False, **overrides)
    build_toy_model("xs")
    toy_reward_model_dir(config.policy)  # cached after the first time

    load_before = os.getloadavg()[0]

    def show(row):
        print(f"iter {row['iteration']:3d}  t={row['time/elapsed_s']:6.1f}s  "
              f"gold {row['reward/gold']:6.2f}  score {row['reward/score']:6.2f}  "
              f"kl {row['objective/kl']:5.2f}  step {row['time/step_s']:.2f}s  "
              f"model {row['time/model_s']:.2f}s", file=sys.stderr, flush=True)

    result = train_ppo(config, on_metrics=show)
    rows = result.history
    times = [r["time/elapsed_s"] for r in rows]
    gold = [r["reward/gold"] for r in rows]
    smooth = [sum(gold[max(0, i - 2):i + 1]) / len(gold[max(0, i - 2):i + 1])
              for i in range(len(gold))]
    gold_start, gold_best = gold[0], max(smooth)
    ceiling = gold_ceiling(config.max_new_tokens)
    later = rows[1:] if len(rows) > 1 else rows
    s_per_iter = ((times[-1] - times[0]) / (len(rows) - 1) if len(rows) > 1
                  else rows[0]["time/step_s"])
    floor = sum(r["time/model_s"] for r in later) / len(later)
    out = {
        "preset": args.preset, "iterations": len(rows), "status": result.status,
        "batch": config.batch_size, "max_new_tokens": config.max_new_tokens,
        "params": result.policy.num_parameters(),
        "s_per_iter": round(s_per_iter, 4),
        "floor_s_per_iter": round(floor, 4),
        "overhead_ratio": round(s_per_iter / floor, 3),
        "floor_parts_s": {k.split("/")[1][:-2]: round(sum(r[k] for r in later) / len(later), 4)
                          for k in ("time/generate_s", "time/forward_s", "time/train_passes_s")},
        "seconds_to_half_gold_gain": first_time_reaching(
            times, smooth, gold_start + 0.5 * (gold_best - gold_start)),
        "gold_start": round(gold_start, 3),
        "gold_best": round(gold_best, 3),
        "gold_final": round(smooth[-1], 3),
        "gold_ceiling": round(ceiling, 3),
        "seconds_to_half_ceiling_gain": first_time_reaching(
            times, smooth, gold_start + 0.5 * (ceiling - gold_start)),
        "setup_and_critic_pretrain_s": round(times[0] - rows[0]["time/step_s"], 2),
        "total_s": round(result.elapsed_s, 2),
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "threads": torch.get_num_threads(),
    }
    for key in ("seconds_to_half_gold_gain", "seconds_to_half_ceiling_gain"):
        if out[key] is not None:
            out[key] = round(out[key], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
