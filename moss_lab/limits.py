"""Bounds on the work one launch may ask for, so that nobody (on a shared class server above
all) starts a run that exhausts the machine's memory or never ends.

The configs check their own ranges (moss_lab.configs BOUNDS) for what *can* work; these
bounds are about what a shared machine should *accept*: generous for a teaching lab
(a batch of 4096, 10 000 iterations, 1024 new tokens), far below the sizes that took the
class server down (a PPO batch of 10^9 ran until memory was gone). The app calls
`check_bounds(kind, config)` before every submit; the run queue does the rest.

    check_bounds("ppo", {"batch_size": 10**9})
    ValueError: batch_size must be at most 4096 here, got 1000000000
"""
from __future__ import annotations

import math

# field name (in any run's config) -> the largest value accepted. One table for every kind:
# a field means the same size wherever it appears (moss_lab.ppo, moss_lab.methods,
# moss_lab.reward and the reward run's own fields).
LIMITS: dict[str, int] = {
    # samples held in memory at once
    "batch_size": 4096, "minibatch_size": 4096, "ptx_batch_size": 4096,
    "prompts_per_step": 1024, "group_size": 256, "pool": 4096, "eval_prompts": 4096,
    "n_samples": 256,
    # how long a run goes on
    "iterations": 10_000, "steps": 10_000, "epochs": 100, "ppo_epochs": 100,
    "critic_pretrain_steps": 10_000,
    # how long each response may get
    "max_new_tokens": 1024,
    # data made before training starts
    "pairs": 100_000, "simulated": 20_000,
}

# products of fields that are held in memory together: (fields, the largest product, what)
PRODUCTS: list[tuple[tuple[str, ...], int, str]] = [
    (("prompts_per_step", "group_size"), 8192, "responses sampled per step"),
    (("pool", "eval_prompts"), 65_536, "responses sampled (pool x eval_prompts)"),
]


def _flat(config: dict) -> dict:
    """The numbers of a config, nested dicts (a reward run's "reward": {...}) included."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value))
        else:
            out.setdefault(key, value)
    return out


def _number(value) -> float | None:
    """A value as a number to compare (text such as '1e9' included); None if it is none."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return float(value) if isinstance(value, (int, float)) else None


def problems(kind: str, config: dict) -> list[str]:
    """The fields of `config` (a run of `kind`) over their bound, each with its bound."""
    values = _flat(config)
    out = []
    for name, limit in LIMITS.items():
        number = _number(values.get(name))
        if number is not None and not (math.isfinite(number) and number <= limit):
            shown = int(number) if math.isfinite(number) and number == int(number) else number
            out.append(f"{name} must be at most {limit} here, got {shown}")
    ns = values.get("ns")  # best-of-n's ladder: every n is a number of samples per prompt
    if isinstance(ns, (list, tuple)) and any((_number(n) or 0) > LIMITS["pool"] for n in ns):
        out.append(f"ns must be at most {LIMITS['pool']} each, got {max(ns)}")
    for fields, limit, what in PRODUCTS:
        numbers = [_number(values.get(f)) for f in fields]
        if all(n is not None and math.isfinite(n) for n in numbers) and math.prod(numbers) > limit:
            out.append(f"{' x '.join(fields)} ({what}) must be at most {limit} here, "
                       f"got {int(math.prod(numbers))}")
    return out


def check_bounds(kind: str, config: dict) -> None:
    """Raise ValueError naming every field of `config` over its bound (and the bound)."""
    found = problems(kind, config)
    if found:
        raise ValueError(f"too much work for one {kind} run: " + "; ".join(found))
