"""`moss-lab rloo`: fine-tune a policy with RLOO (trl's RLOOTrainer) against a reward model.

    moss-lab rloo                                   # the toy world, ~40 s on a laptop CPU
    moss-lab rloo --group-size 2 --beta 0           # the smallest group, no KL (Lab 10)

Every RLOOTrainConfig field is a flag (--field-name); `--help` shows their docstrings.
Ctrl-C stops after the current step and still saves the run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..configs import parse_args
from ..methods.train_rloo import RLOOTrainConfig


@dataclass
class RLOO:
    """Fine-tune a policy with RLOO (trl's RLOOTrainer) against a reward model."""

    run_dir: Path | None = None
    """Folder for config.json, metrics.jsonl, samples.jsonl, result.json and the saved
    policy (default: <data home>/runs/rloo-<time>)."""
    config: RLOOTrainConfig = field(default_factory=RLOOTrainConfig)
    """RLOO (moss_lab.methods.train_rloo.RLOOTrainConfig)."""


def main(argv: list[str]) -> int:
    from ..methods.train_rloo import train_rloo
    from .run import run_with_progress

    options = parse_args(RLOO, argv, prog="moss-lab rloo")
    return run_with_progress("rloo", train_rloo, options.config, options.run_dir,
                             options.config.steps)
