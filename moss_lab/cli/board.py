"""`moss-lab board`: the leaderboard of every policy compared with `moss-lab eval`.

    moss-lab board                  # the gold board
    moss-lab board --judge rm       # the reward-model board (all reward models, or --reward)

Bradley-Terry ratings on the Elo scale (the anchor, the base model "toy", is 1000; +191
points = a 75% expected win rate) with bootstrap 95% intervals, fitted on the stored
per-prompt judgements (<data home>/evals/*.jsonl) of one judge: the boards are never
mixed. The definitions are in moss_lab.leaderboard. The last line printed is one JSON
object: {"judge", "judgements", "anchor", "models": [{"model", "label", "rating",
"rating_ci95", "games", "wins", "ties", "losses"}, ...]} (best first). Exit code 1 when no
judgements are stored, 2 for bad flags.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from ..configs import parse_args


@dataclass
class Board:
    """Rate every compared policy (Bradley-Terry, Elo scale, bootstrap 95% intervals)."""

    judge: Literal["gold", "rm"] = "gold"
    """Whose judgements: "gold" (the toy world's true score) or "rm" (reward models)."""
    reward: str | None = None
    """With --judge rm: only the judgements of this reward-model folder (default: all)."""
    anchor: str = "toy"
    """The policy rated 1000 (if it was compared; else the mean strength is 1000)."""
    l2: float = 0.01
    """L2 prior on the strengths (natural-log scale): keeps a policy that always won finite.
    0: the plain maximum-likelihood fit (refused when some policy is unbeaten)."""
    bootstrap: int = 1000
    """Bootstrap resamples of the judgements for the 95% intervals."""
    seed: int = 0
    """Seeds the bootstrap."""

    def __post_init__(self) -> None:
        if self.l2 < 0:
            raise ValueError("l2 must be >= 0")
        if not 100 <= self.bootstrap <= 100_000:
            raise ValueError("bootstrap must be 100 to 100,000")


def main(argv: list[str]) -> int:
    from ..evaluate import evals_dir, label_of, read_judgements
    from ..leaderboard import BoardError, leaderboard, outcomes_from_judgements

    options = parse_args(Board, argv, prog="moss-lab board")
    anchor = {"toy-xs": "toy"}.get(options.anchor, options.anchor)
    rows = read_judgements(options.judge, reward=options.reward)
    if not rows:
        print(f"moss-lab board: no {options.judge} judgements stored in {evals_dir()}: "
              f"run moss-lab eval --judge {options.judge} first")
        return 1
    try:
        board = leaderboard(outcomes_from_judgements(rows), anchor=anchor, l2=options.l2,
                            n_resamples=options.bootstrap, seed=options.seed)
    except BoardError as err:
        print(f"moss-lab board: error: {err}")
        return 2
    rewards = sorted({r["reward"] for r in rows if r.get("reward")})
    print(f"{options.judge} board: {len(rows)} judgements from "
          f"{len({r.get('eval') for r in rows})} evals"
          + (f" (reward models: {', '.join(rewards)})" if rewards else ""))
    print(f"  {'#':>2s}  {'policy':30s} {'rating':>7s}  {'95% interval':>16s}  {'games':>6s}  "
          f"{'W':>5s} {'T':>5s} {'L':>5s}")
    for rank, r in enumerate(board, 1):
        lo, hi = r["rating_ci95"]
        print(f"  {rank:2d}  {label_of(r['model'])[:30]:30s} {r['rating']:7.0f}  "
              f"[{lo:6.0f}, {hi:6.0f}]  {r['games']:6d}  {r['wins']:5d} {r['ties']:5d} "
              f"{r['losses']:5d}")
    if board[0]["bootstrap_failed"]:
        print(f"  ({board[0]['bootstrap_failed']} bootstrap resamples had no finite fit)")
    models = [{**{k: v for k, v in r.items() if k != "bootstrap_failed"},
               "label": label_of(r["model"])} for r in board]
    print(json.dumps({"judge": options.judge, "judgements": len(rows),
                      "anchor": anchor if any(r["model"] == anchor for r in board) else None,
                      "models": models}))
    return 0
