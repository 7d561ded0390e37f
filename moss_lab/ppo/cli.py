"""`moss-lab ppo`: fine-tune a policy with PPO against a reward model.

    moss-lab ppo                                    # the toy world, toy-fast preset
    moss-lab ppo --kl-coef 0 --iterations 100       # Lab 08: watch reward hacking
    moss-lab ppo --preset gpu-small --policy my-sft --reward runs/rm-1 --prompts prompts.jsonl

Every PPOConfig field is an option (--field-name); `--help` shows their docstrings.
Ctrl-C stops after the current iteration and still saves the run.
"""
from __future__ import annotations

import argparse
import dataclasses
import signal
import time
import typing
from pathlib import Path

from .config import FIELD_DOCS, PRESETS, PPOConfig


def _parse_optional(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "off") else kind(text)  # "--reward-clip none"
    parse.__name__ = kind.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="toy-fast", choices=sorted(PRESETS),
                        help="starting configuration (default: toy-fast)")
    parser.add_argument("--run-dir", default=None,
                        help="folder for metrics.jsonl, samples and the saved policy "
                             "(default: <data home>/runs/ppo-<time>)")
    hints = typing.get_type_hints(PPOConfig)
    for f in dataclasses.fields(PPOConfig):
        flag, hint, doc = "--" + f.name.replace("_", "-"), hints[f.name], FIELD_DOCS.get(f.name, "")
        doc = doc.replace("%", "%%")
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=doc)
            continue
        args = typing.get_args(hint)
        base = next((a for a in args if a is not type(None)), hint) if args else hint
        kind = _parse_optional(base) if type(None) in args else base
        parser.add_argument(flag, type=kind, default=argparse.SUPPRESS,  # absent: preset's value
                            metavar=base.__name__.upper(), help=doc)


def main(args) -> int:
    from tqdm.auto import tqdm

    from ..paths import runs_dir
    from .trainer import train_ppo

    names = {f.name for f in dataclasses.fields(PPOConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    config = PPOConfig.preset(args.preset, **overrides)
    run_dir = Path(args.run_dir) if args.run_dir else runs_dir() / time.strftime("ppo-%Y%m%d-%H%M%S")
    print(f"PPO run -> {run_dir}  (policy {config.policy}, reward {config.reward}, "
          f"{config.iterations} iterations of {config.batch_size} responses)")

    stop = {"asked": False}

    def on_sigint(signum, frame):
        if stop["asked"]:
            raise KeyboardInterrupt
        stop["asked"] = True
        print("\nstopping after this iteration (Ctrl-C again to abort)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    bar = tqdm(total=config.iterations, unit="it", desc="ppo")

    def on_metrics(row: dict) -> None:
        bar.update(1)
        shown = {"score": row["reward/score"], "kl": row["objective/kl"]}
        if "reward/gold" in row:
            shown["gold"] = row["reward/gold"]
        bar.set_postfix({k: f"{v:.2f}" for k, v in shown.items()}, refresh=False)

    try:
        result = train_ppo(config, run_dir=run_dir, on_metrics=on_metrics,
                           should_stop=lambda: stop["asked"])
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    print(f"{result.status}: {result.reason} ({result.elapsed_s:.0f} s)")
    if result.history:
        first, last = result.history[0], result.history[-1]
        for key in ("reward/score", "reward/gold", "objective/kl", "response/length"):
            if key in last:
                print(f"  {key:16s} {first[key]:8.3f} -> {last[key]:8.3f}")
    print(f"  metrics: {run_dir / 'metrics.jsonl'}")
    if (run_dir / "policy").is_dir():
        print(f"  policy:  {run_dir / 'policy'}  (moss-lab ppo --policy {run_dir / 'policy'} ...)")
    return 1 if result.status == "nan" else 0
