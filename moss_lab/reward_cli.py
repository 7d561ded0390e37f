"""`moss-lab train-rm`: train a reward model on preference pairs.

    moss-lab train-rm                         toy world: sample pairs from the base model,
                                              label them with the simulated annotator
    moss-lab train-rm --data pairs.jsonl      our JSONL records (prompt/chosen/rejected...)
    moss-lab train-rm --hh hh.jsonl           Anthropic HH-RLHF lines ({"chosen", "rejected"})

The deeper setup of benchmarks/reward_model.py (seed 0: 0.848 gold agreement in 42 s of
training; 10% of the pairs are held out, so it trains on 9000 like the benchmark):
    moss-lab train-rm --noise 0.6 --pairs 10000 --base toy-xs-deep --epochs 3 --min-lr-ratio 0 \
        --no-freeze-embeddings --lm-coef 0.5 --attn-implementation eager --threads 2

The run folder (default: <data home>/runs/rm-<time>) gets config.json, metrics.jsonl and
the model in model/. Ctrl-C stops training early and still saves what was learned.
"""
from __future__ import annotations

import argparse
import signal
import time
from dataclasses import fields

from .reward import RewardConfig

# RewardConfig fields exposed as --flags (the rest keep their defaults)
FLAGS = ["base", "epochs", "batch_size", "lr", "min_lr_ratio", "eval_fraction", "seed",
         "threads", "device", "freeze_embeddings", "attn_implementation", "label_smoothing",
         "margin", "adaptive_margin", "flip_fraction", "lm_coef", "center_coef"]


def field_type(name: str):
    """How a RewardConfig field's value is read from text: str, int or float (from its
    annotation, so `threads: int | None` reads as int). Bool fields are the caller's."""
    annotation = str(next(f.type for f in fields(RewardConfig) if f.name == name))
    return str if "str" in annotation else int if "int" in annotation else float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("data (default: simulated pairs from the toy world)")
    src.add_argument("--data", help="JSONL file of preference records")
    src.add_argument("--hh", help="JSONL file in the Anthropic HH-RLHF format")
    src.add_argument("--pairs", type=int, default=4000, help="toy world: number of pairs")
    src.add_argument("--policy", default="toy", help="toy world: the model that writes responses")
    src.add_argument("--noise", type=float, default=1.0, help="toy world: annotator noise")
    src.add_argument("--length-bias", type=float, default=0.0,
                     help="toy world: annotator's preference for longer answers")
    src.add_argument("--max-new-tokens", type=int, default=40, help="toy world: response length cap")
    src.add_argument("--save-pairs", help="also write the pairs used to this JSONL file")
    cfg = parser.add_argument_group("training (defaults: RewardConfig)")
    defaults = RewardConfig()
    types = {f.name: f.type for f in fields(RewardConfig)}
    for name in FLAGS:
        value = getattr(defaults, name)
        flag = "--" + name.replace("_", "-")
        if "bool" in str(types[name]):  # --freeze-embeddings / --no-freeze-embeddings
            cfg.add_argument(flag, action=argparse.BooleanOptionalAction, default=value,
                             help=f"default: {value}")
            continue
        cfg.add_argument(flag, type=field_type(name), default=value, help=f"default: {value}")
    parser.add_argument("--out", help="run folder (default: <data home>/runs/rm-<time>)")


def load_pairs(args) -> list:
    from . import preferences

    if args.data and args.hh:
        raise SystemExit("give either --data or --hh, not both")
    if args.data:
        return preferences.read_jsonl(args.data)
    if args.hh:
        return preferences.read_hh_jsonl(args.hh)
    from .models import load_policy
    from .toyworld import SimulatedAnnotator

    model, tokenizer = load_policy(args.policy, device=args.device, threads=args.threads)
    annotator = SimulatedAnnotator(noise=args.noise, length_bias=args.length_bias, seed=args.seed)
    t0 = time.perf_counter()
    pairs = preferences.toy_pairs(model, tokenizer, args.pairs, annotator, seed=args.seed,
                                  max_new_tokens=args.max_new_tokens)
    agree = preferences.gold_agreement(pairs)["agreement"]
    print(f"sampled {len(pairs)} pairs from {args.policy!r} in {time.perf_counter() - t0:.1f} s; "
          f"the annotator agrees with the gold score on {agree:.1%} of them")
    return pairs


def config_from_args(args) -> RewardConfig:
    """The RewardConfig the command-line flags describe."""
    return RewardConfig(**{name: getattr(args, name) for name in FLAGS})


def main(args) -> int:
    from . import preferences
    from .paths import runs_dir
    from .reward import train_reward_model

    try:
        pairs = load_pairs(args)
    except preferences.PreferenceError as err:
        print(f"error: {err}")
        return 2
    if args.save_pairs:
        print(f"pairs written to {preferences.write_jsonl(pairs, args.save_pairs)}")
    config = config_from_args(args)
    out = args.out or runs_dir() / time.strftime("rm-%Y%m%d-%H%M%S")

    stop = {"now": False}

    def on_sigint(signum, frame):
        print("\nstopping after this step (Ctrl-C again to abort)")
        stop["now"] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGINT, on_sigint)

    def show(m: dict) -> None:
        if "eval/acc_labels" in m:
            gold = m.get("eval/acc_gold")
            gold_txt = f"  acc_gold {gold:.3f}" if gold is not None else ""
            print(f"epoch {m['epoch']:.0f}  held-out: loss {m['eval/loss']:.3f}  "
                  f"acc_labels {m['eval/acc_labels']:.3f}{gold_txt}", flush=True)
        elif m["step"] % 20 == 0:
            print(f"step {m['step']:5d}  loss {m['loss']:.3f}  acc {m['train/accuracy']:.2f}  "
                  f"margin {m['train/margin']:+.2f}  lr {m['lr']:.1e}", flush=True)

    try:
        _, _, final = train_reward_model(pairs, config, run_dir=out, on_metrics=show,
                                         should_stop=lambda: stop["now"])
    finally:
        signal.signal(signal.SIGINT, previous)
    gold = final.get("acc_gold")
    print(f"done in {final['seconds']:.1f} s ({final['steps']} steps"
          f"{', stopped early' if final['stopped'] else ''}): held-out accuracy vs labels "
          f"{final.get('acc_labels', float('nan')):.3f}"
          + (f", vs gold {gold:.3f}" if gold is not None else ""))
    print(f"reward model saved to {final['run_dir']}/model")
    return 0
