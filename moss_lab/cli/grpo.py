"""`moss-lab grpo`: fine-tune a policy with GRPO (trl's GRPOTrainer) against a reward model.

    moss-lab grpo                                   # the toy world, ~30 s on a laptop CPU
    moss-lab grpo --reward gold --beta 0            # the oracle reward, no KL (Lab 10)
    moss-lab grpo --group-size 4 --loss-type grpo   # smaller groups, the paper's averaging

Every GRPOTrainConfig field is a flag (--field-name); `--help` shows their docstrings.
Ctrl-C stops after the current step and still saves the run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..configs import parse_args
from ..methods.train_grpo import GRPOTrainConfig
from .run import run_with_progress

@dataclass
class GRPO:
    """Fine-tune a policy with GRPO (trl's GRPOTrainer) against a reward model."""

    run_dir: Path | None = None
    """Folder for config.json, metrics.jsonl, samples.jsonl, result.json and the saved
    policy (default: <data home>/runs/grpo-<time>)."""
    config: GRPOTrainConfig = field(default_factory=GRPOTrainConfig)
    """GRPO (moss_lab.methods.train_grpo.GRPOTrainConfig)."""


def main(argv: list[str]) -> int:
    from ..methods.train_grpo import train_grpo

    options = parse_args(GRPO, argv, prog="moss-lab grpo")
    return run_with_progress("grpo", train_grpo, options.config, options.run_dir,
                             options.config.steps)
