"""`moss-lab board`: the leaderboard of every policy compared with `moss-lab eval`.

    moss-lab board                  # the gold board
    moss-lab board --judge rm       # the reward-model board (all reward models, or --reward)
    moss-lab board --judge people   # the people's board: votes between two policies

Bradley-Terry ratings on the Elo scale (the anchor, the base model "toy", is 1000; +191
points = a 75% expected win rate) with bootstrap 95% intervals, fitted on the stored
per-prompt judgements (<data home>/evals/*.jsonl) of one judge, or (people) on the votes
in the label store whose pair has two policies (eval pairs, Compare's blind picks): the
boards are never mixed. The definitions are in moss_lab.leaderboard. The last line printed is one JSON
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

    judge: Literal["gold", "rm", "people"] = "gold"
    """Whose judgements: "gold" (the toy world's true score), "rm" (reward models) or
    "people" (votes in the label store between two policies)."""
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
    if options.judge == "people":
        outcomes, rows = people_outcomes(), None
        where = "the label store"
    else:
        rows = read_judgements(options.judge, reward=options.reward)
        outcomes, where = outcomes_from_judgements(rows), evals_dir()
    if not outcomes:
        how = ("vote on pairs of two policies (moss-lab eval --judge people, then the app's "
               "Label tab, or Compare's blind mode)" if options.judge == "people"
               else f"run moss-lab eval --judge {options.judge}")
        print(f"moss-lab board: no {options.judge} judgements stored in {where}: {how} first")
        return 1
    try:
        board = leaderboard(outcomes, anchor=anchor, l2=options.l2,
                            n_resamples=options.bootstrap, seed=options.seed)
    except BoardError as err:
        print(f"moss-lab board: error: {err}")
        return 2
    if rows is None:
        print(f"people board: {len(outcomes)} votes between two policies")
    else:
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
    print(json.dumps({"judge": options.judge, "judgements": len(outcomes),
                      "anchor": anchor if any(r["model"] == anchor for r in board) else None,
                      "models": models}))
    return 0


def people_outcomes() -> list:
    """The people's outcomes: every stored vote between two different policies."""
    from ..labels import LabelStore
    from ..leaderboard import outcomes_from_votes

    store = LabelStore()
    try:
        return outcomes_from_votes(store.votes())
    finally:
        store.close()
