"""Benchmark: how well, and how fast, does the default reward model learn the toy world?

    python benchmarks/reward_model.py [--pairs 4000] [--eval-pairs 1000] [--noise 1.0]
                                      [--set epochs=3 --set lr=2e-3 ...]

Samples `pairs` training pairs and `eval-pairs` held-out pairs (other prompts, other
seeds) from the toy base model, labels them with the simulated annotator, trains a reward
model with RewardConfig() (plus any --set overrides) and reports held-out accuracy
against the labels and against the gold score. The clock covers pair generation and
training (the base models are built and cached before it starts).

Target (issue 3): acc_gold >= 0.85 in <= 60 s on 2 CPU cores. The last line is JSON.
Measured on a quiet moment of the shared 2-core machine, default config (toy xs, 7 epochs,
lr 2e-3, frozen embeddings, fused GELU): 51.4 s (10.6 s pairs + 40.7 s training),
acc_gold 0.819 (seeds 1 and 2 of the RM: 0.792, 0.789), annotator 0.834 -- the target is
NOT met yet; see the report of issue 3.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from moss_lab import preferences  # noqa: E402
from moss_lab.models import build_toy_model, load_policy, resolve_toy  # noqa: E402
from moss_lab.reward import RewardConfig, train_reward_model  # noqa: E402
from moss_lab.toyworld import SimulatedAnnotator  # noqa: E402


def parse_overrides(items: list[str]) -> dict:
    types = {f.name: type(getattr(RewardConfig(), f.name)) for f in fields(RewardConfig)}
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"unknown RewardConfig field {key!r}")
        kind = types[key]
        out[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else \
            value if kind in (str, type(None)) else kind(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=4000)
    ap.add_argument("--eval-pairs", type=int, default=1000)
    ap.add_argument("--noise", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a RewardConfig field")
    args = ap.parse_args()
    torch.set_num_threads(1)
    config = RewardConfig(seed=args.seed, **parse_overrides(args.set))

    # build (or find) the base models before the clock starts
    policy, tokenizer = load_policy("toy")
    if resolve_toy(config.base):
        build_toy_model(resolve_toy(config.base))

    start = time.perf_counter()
    train = preferences.toy_pairs(policy, tokenizer, args.pairs,
                                  SimulatedAnnotator(args.noise, seed=args.seed),
                                  seed=args.seed, max_new_tokens=args.max_new_tokens)
    held_out = preferences.toy_pairs(policy, tokenizer, args.eval_pairs,
                                     SimulatedAnnotator(args.noise, seed=args.seed + 1),
                                     seed=args.seed + 10_000, max_new_tokens=args.max_new_tokens)
    t_pairs = time.perf_counter() - start
    annot_train = preferences.gold_agreement(train)
    annot_eval = preferences.gold_agreement(held_out)
    print(f"{len(train)} + {len(held_out)} pairs in {t_pairs:.1f} s; the annotator agrees "
          f"with gold on {annot_train:.3f} (train) / {annot_eval:.3f} (held-out)", flush=True)

    def show(m: dict) -> None:
        if "eval/acc_gold" in m:
            print(f"  epoch {m['epoch']:.0f}  {time.perf_counter() - start:5.1f} s  "
                  f"acc_labels {m['eval/acc_labels']:.3f}  acc_gold {m['eval/acc_gold']:.3f}",
                  flush=True)

    model, _, final = train_reward_model(train, config, on_metrics=show, eval_pairs=held_out)
    seconds = time.perf_counter() - start
    result = {"seconds": round(seconds, 1), "seconds_pairs": round(t_pairs, 1),
              "seconds_train": round(final["seconds"], 1), "pairs": len(train),
              "eval_pairs": len(held_out), "acc_labels": round(final["acc_labels"], 4),
              "acc_gold": round(final["acc_gold"], 4),
              "annotator_acc_gold": round(annot_eval, 4), "params": model.num_parameters(),
              "target_met": final["acc_gold"] >= 0.85 and seconds <= 60,
              "config": {k: v for k, v in asdict(config).items() if v != getattr(RewardConfig(), k)}
              or "default"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
