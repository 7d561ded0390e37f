"""`moss-lab best-of-n`: evaluate best-of-n sampling for a ladder of n (no training).

    moss-lab best-of-n                              # n = 1 ... 32 on the toy world, ~20 s
    moss-lab best-of-n --ns 1 4 16 64 --pool 128    # a longer ladder
    moss-lab best-of-n --reward gold                # pick with the oracle (Lab 10)

Every BestOfNConfig field is a flag (--field-name); `--help` shows their docstrings. One
metrics row per n, in a run folder like every training method's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..configs import parse_args
from ..methods.train_best_of_n import BestOfNConfig


@dataclass
class BestOfN:
    """Evaluate best-of-n sampling against a reward model, for a ladder of n."""

    run_dir: Path | None = None
    """Folder for config.json, metrics.jsonl, samples.jsonl and result.json
    (default: <data home>/runs/best-of-n-<time>)."""
    config: BestOfNConfig = field(default_factory=BestOfNConfig)
    """Best-of-n (moss_lab.methods.train_best_of_n.BestOfNConfig)."""


def main(argv: list[str]) -> int:
    from ..methods.train_best_of_n import train_best_of_n
    from .run import run_with_progress

    options = parse_args(BestOfN, argv, prog="moss-lab best-of-n")
    return run_with_progress("best-of-n", train_best_of_n, options.config, options.run_dir,
                             len(options.config.ns), unit="n")
