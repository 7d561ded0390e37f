"""What `moss-lab dpo`, `grpo`, `rloo` and `best-of-n` share: the options (the method's
config, every field a flag, and a run folder), a progress bar, Ctrl-C to stop, and a short
summary at the end."""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from ..configs import parse_args
from .stop import StopOnCtrlC

Config = TypeVar("Config")


@dataclass
class MethodRun(Generic[Config]):
    """Train a policy with one method; every field of its config is a flag."""

    config: Config
    """The method's configuration (moss_lab.methods.train_<method>)."""
    run_dir: Path | None = None
    """Folder for config.json, metrics.jsonl, samples.jsonl, result.json and the saved
    policy (default: <data home>/runs/<method>-<time>)."""


def method_main(kind: str, config_cls: type, train: Callable, argv: list[str],
                total: Callable = lambda config: None, unit: str = "step") -> int:
    """`moss-lab <kind> [--flags]`: parse the flags into config_cls and run `train`."""
    options = parse_args(MethodRun[config_cls], argv, prog=f"moss-lab {kind}",
                         default=MethodRun(config_cls()), description=config_cls.__doc__)
    return run_with_progress(kind, train, options.config, options.run_dir,
                             total(options.config), unit)

SUMMARY_KEYS = ("reward/score", "reward/gold", "objective/kl", "response/length")


def run_with_progress(kind: str, train: Callable, config, run_dir: Path | None,
                      total: int | None, unit: str = "step") -> int:
    """Run train(config, run_dir, on_metrics, should_stop) with a tqdm bar, Ctrl-C to stop,
    and a short summary; the exit code (2: the run could not start, 1: NaN guard)."""
    from tqdm.auto import tqdm

    from ..paths import runs_dir
    from ..run_folder import new_run_name

    run_dir = run_dir or runs_dir() / new_run_name(kind)
    print(f"{kind} run -> {run_dir}  (policy {config.policy})")
    bar = tqdm(total=total, unit=unit, desc=kind)

    def on_metrics(row: dict) -> None:
        bar.update(max(0, row["step"] - bar.n))
        shown = {"score": row["reward/score"], "gold": row["reward/gold"],
                 "kl": row["objective/kl"]}
        bar.set_postfix({k: f"{v:.2f}" for k, v in shown.items()}, refresh=False)

    with StopOnCtrlC(unit) as stop:
        try:
            result = train(config, run_dir=run_dir, on_metrics=on_metrics, should_stop=stop)
        except ValueError as err:  # MethodError and unknown models: nothing was written
            bar.close()
            print(f"moss-lab {kind}: error: {err}", file=sys.stderr)
            return 2
        bar.close()
    print(f"{result.status}: {result.reason} ({result.elapsed_s:.0f} s)")
    if result.history:
        first, last = result.history[0], result.history[-1]
        for key in SUMMARY_KEYS:
            print(f"  {key:16s} {first[key]:8.3f} -> {last[key]:8.3f}")
        best = max(result.history, key=lambda r: r["reward/gold"])
        where = f"n = {best['n']}" if "n" in best else f"step {best['step']}"
        print(f"  best reward/gold {best['reward/gold']:.3f} at {where} "
              f"(objective/kl {best['objective/kl']:.3f})")
    print(f"  metrics: {run_dir / 'metrics.jsonl'}")
    if (run_dir / "policy").is_dir():
        print(f"  policy:  {run_dir / 'policy'}")
    return 1 if result.status in ("nan", "oom") else 0
