"""`moss-lab ppo`: fine-tune a policy with PPO against a reward model.

    moss-lab ppo                                    # the toy world, toy-fast preset
    moss-lab ppo --kl-coef 0 --iterations 100       # Lab 08: watch reward hacking
    moss-lab ppo --preset gpu-small --policy my-sft --reward runs/rm-1 --prompts prompts.jsonl

Every PPOConfig field is a flag (--field-name); `--help` shows their docstrings, and the
flags not given keep the preset's values. Before a run starts it says what is missing (a
real-model preset needs --policy, --reward and --prompts; gpu-small needs a CUDA GPU) and
prints a memory estimate (moss_lab.memory). Ctrl-C stops after the current iteration and
still saves the run.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..configs import parse_args
from ..ppo.config import PRESETS, PPOConfig
from .stop import StopOnCtrlC


@dataclass
class PPO:
    """Fine-tune a policy with PPO against a reward model."""

    preset: Literal["toy-fast", "gpu-small"] = "toy-fast"
    """Starting configuration (moss_lab.ppo.config.PRESETS): "toy-fast", the toy world on a
    laptop CPU, or "gpu-small", a ~100-500M model on one GPU. Flags override its fields."""
    run_dir: Path | None = None
    """Folder for config.json, metrics.jsonl, samples.jsonl, result.json and the saved
    policy (default: <data home>/runs/ppo-<time>)."""
    config: PPOConfig = field(default_factory=PPOConfig)
    """PPO (moss_lab.ppo.PPOConfig; defaults: the preset's)."""


def preset_in(argv: list[str]) -> str:
    """The --preset named in argv, read before parsing so that it can supply the defaults."""
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--preset="):
            return arg.partition("=")[2]
    return "toy-fast"


def parse(argv: list[str]) -> PPO:
    """The options argv gives; the flags it does not give keep the preset's values."""
    name = preset_in(argv)
    default = PPO(name, config=PRESETS[name]) if name in PRESETS else None  # else: tyro says
    return parse_args(PPO, argv, prog="moss-lab ppo", default=default)


def preflight(config: PPOConfig) -> list[str]:
    """What stops this config from running here, in words (empty: ready)."""
    from ..device import pick_device

    problems = config.missing_inputs()
    try:
        pick_device(config.device)
    except ValueError as err:
        problems.append(str(err))
    return problems


def memory_line(config: PPOConfig) -> str:
    """The memory estimate, or why there is none (a model name that cannot be read)."""
    from ..device import device_memory_gib, pick_device
    from ..memory import describe, estimate_for_config

    device = pick_device(config.device)
    try:
        estimate = estimate_for_config(config, device)
        return f"{describe(estimate, device_memory_gib(device))} on {device}"
    except Exception as err:  # an unreadable model name: the run itself will say more
        return f"memory estimate: unavailable ({type(err).__name__}: {err})"


def main(argv: list[str]) -> int:
    from tqdm.auto import tqdm

    from ..paths import runs_dir
    from ..ppo.trainer import train_ppo
    from ..run_folder import new_run_name

    options = parse(argv)
    config = options.config
    problems = preflight(config)
    if problems:
        print(f"moss-lab ppo --preset {options.preset}: not started: " + "; ".join(problems),
              file=sys.stderr)
        return 2
    run_dir = options.run_dir or runs_dir() / new_run_name("ppo")
    print(f"PPO run -> {run_dir}  (policy {config.policy}, reward {config.reward}, "
          f"{config.iterations} iterations of {config.batch_size} responses)")
    print(memory_line(config))
    bar = tqdm(total=config.iterations, unit="it", desc="ppo")

    def on_metrics(row: dict) -> None:
        bar.update(1)
        shown = {"score": row["reward/score"], "kl": row["objective/kl"]}
        if "reward/gold" in row:
            shown["gold"] = row["reward/gold"]
        bar.set_postfix({k: f"{v:.2f}" for k, v in shown.items()}, refresh=False)

    with StopOnCtrlC("iteration") as stop:
        try:
            result = train_ppo(config, run_dir=run_dir, on_metrics=on_metrics, should_stop=stop)
        finally:
            bar.close()
    print(f"{result.status}: {result.reason} ({result.elapsed_s:.0f} s)")
    if result.history:
        first, last = result.history[0], result.history[-1]
        for key in ("reward/score", "reward/gold", "objective/kl", "response/length"):
            if key in last:
                print(f"  {key:16s} {first[key]:8.3f} -> {last[key]:8.3f}")
    print(f"  metrics: {run_dir / 'metrics.jsonl'}")
    if (run_dir / "policy").is_dir():
        print(f"  policy:  {run_dir / 'policy'}  (moss-lab ppo --policy {run_dir / 'policy'} ...)")
    return 1 if result.status in ("nan", "oom") else 0
