"""`moss-lab dpo`: fine-tune a policy with DPO (trl's DPOTrainer) on preference pairs.

    moss-lab dpo                                    # simulated toy labels, ~30 s on a CPU
    moss-lab dpo --data labels                      # your votes in the app's label store
    moss-lab dpo --data pairs.jsonl --beta 0.3      # prompt/chosen/rejected records

Every DPOTrainConfig field is a flag (--field-name); `--help` shows their docstrings.
Too few labels, or only ties, stop the command before anything is written. Ctrl-C stops
after the current step and still saves the run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..configs import parse_args
from ..methods.train_dpo import DPOTrainConfig


@dataclass
class DPO:
    """Fine-tune a policy with DPO (trl's DPOTrainer) on preference pairs."""

    run_dir: Path | None = None
    """Folder for config.json, metrics.jsonl, samples.jsonl, result.json and the saved
    policy (default: <data home>/runs/dpo-<time>)."""
    config: DPOTrainConfig = field(default_factory=DPOTrainConfig)
    """DPO (moss_lab.methods.train_dpo.DPOTrainConfig)."""


def main(argv: list[str]) -> int:
    import math

    from ..methods.train_dpo import train_dpo
    from .run import run_with_progress

    options = parse_args(DPO, argv, prog="moss-lab dpo")
    config = options.config
    total = None  # the steps are known once the labels are read
    if config.data == "toy":
        total = math.ceil(config.pairs / config.batch_size) * config.epochs
    return run_with_progress("dpo", train_dpo, config, options.run_dir, total)
