"""`moss-lab eval`: compare two policies, win rates with bootstrap 95% intervals.

    moss-lab eval --a toy --b runs/ppo-1 --prompts 200 --judge gold
    moss-lab eval --a toy --b ppo-20250101-120000 --judge gold,rm     # a run name works too
    moss-lab eval --a runs/ppo-1 --b runs/ppo-2 --judge rm --reward runs/rm-3
    moss-lab eval --b runs/ppo-1 --prompts 30 --judge gold,people --name ask-1
    moss-lab eval --people ask-1       # the people's verdicts so far on eval ask-1's pairs

Both policies answer the same N toy prompts (one sampled response each); each judge (gold:
the toy world's true score; rm: a reward model) gives each prompt to A, to B or calls a
tie. People judge later: with --judge people the N pairs are queued in the label store and
served blind by the app's Label tab; `--people NAME` prints their verdicts so far (the
same rates and intervals, and their agreement with gold and the reward model). The
definitions (rates, ties, bootstrap, agreement) are in moss_lab.evaluate.

The last line printed is one JSON object: "a", "b", "n", "judge" (the first judge named)
with that judge's "win_rate", "tie_rate", "loss_rate" (of A against B), "margin" (win -
loss), each with a "..._ci95": [lo, hi]; "by_judge": the same figures for every judge;
"agreement": for each pair of judges ("gold~rm"), how often they agree; "saved": the
file of per-prompt judgements (<data home>/evals/<name>.jsonl; `moss-lab board` rates
every policy from them). Bad input exits with code 2 and stores nothing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..configs import parse_args


@dataclass
class Eval:
    """Compare policy A against policy B: win/tie/loss rates with bootstrap 95% intervals."""

    b: str = ""
    """Policy B: "toy", a folder saved with save_pretrained, a PPO run folder (its policy/
    subfolder), a run name under <data home>/runs, or a hub id. Required unless --people."""
    a: str = "toy"
    """Policy A (the same kinds as --b). The rates are A's: win_rate = A judged better."""
    prompts: int = 200
    """N: how many toy prompts (1 to 10,000); one response from each policy per prompt."""
    judge: str = "gold"
    """Who decides: "gold" (the toy world's true score), "rm" (a reward model), "people"
    (blind pairs queued for the app's Label tab, 1,000 at most), or several joined by
    commas ("gold,rm": both, and how often they agree)."""
    reward: str = "toy"
    """The rm judge's reward model: "toy" (the cached toy reward model) or a folder saved by
    moss-lab train-rm."""
    seed: int = 0
    """Seeds the prompts, the sampling and the bootstrap: same seed, same figures."""
    max_new_tokens: int = 20
    """Longest response, in tokens (20: the toy-fast PPO preset's, what its runs learned)."""
    temperature: float = 1.0
    """Sampling temperature of both policies."""
    top_p: float = 1.0
    """Nucleus sampling of both policies (1: off)."""
    batch_size: int = 64
    """Prompts sampled at once."""
    tie_tol: float = 1e-6
    """Scores closer than this are a tie (gold scores are discrete: ties are common)."""
    bootstrap: int = 2000
    """Bootstrap resamples of the prompts for the 95% intervals."""
    name: str | None = None
    """Name of the stored judgements, <data home>/evals/<name>.jsonl (default eval-<time>);
    an existing name is refused."""
    save: bool = True
    """Store the per-prompt judgements for `moss-lab board` (--no-save: only print)."""
    device: str | None = None
    """"cpu", "cuda", "mps", or None for the best available."""
    threads: int | None = None
    """CPU threads; None: 1 for tiny models."""
    people: str | None = None
    """Print the people's verdicts so far on the pairs of this stored eval (its --name) and
    exit: nothing is sampled."""

    def __post_init__(self) -> None:
        from ..evaluate import check_n, parse_judges

        check_n(self.prompts)
        parse_judges(self.judge)
        for ok, message in ((self.max_new_tokens >= 1, "max_new_tokens must be >= 1"),
                            (self.temperature > 0, "temperature must be > 0"),
                            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
                            (self.batch_size >= 1, "batch_size must be >= 1"),
                            (self.tie_tol >= 0, "tie_tol must be >= 0"),
                            (100 <= self.bootstrap <= 100_000, "bootstrap must be 100 to 100,000")):
            if not ok:
                raise ValueError(message)


def main(argv: list[str]) -> int:
    from tqdm.auto import tqdm

    from .. import evaluate

    options = parse_args(Eval, argv, prog="moss-lab eval")
    if options.people is not None:
        return show_people(options.people, options.bootstrap, options.seed)
    judges = evaluate.parse_judges(options.judge)
    n = options.prompts
    try:  # every check that can fail before the models are loaded
        if not options.b.strip():
            raise evaluate.EvalError("give policy B (--b), e.g. --b runs/ppo-1")
        if "people" in judges and not options.save:
            raise evaluate.EvalError("--judge people stores the pairs people will label: "
                                     "drop --no-save")
        ref_a, ref_b, judges = evaluate.prepare(options.a, options.b, n, judges)
        name = evaluate.check_name(options.name) if options.save else None
    except evaluate.EvalError as err:
        print(f"moss-lab eval: error: {err}")
        return 2
    print(f"A = {ref_a.key}\nB = {ref_b.key}\n{n} prompts, judged by {', '.join(judges)}")
    bar = tqdm(total=2 * n * (1 + ("rm" in judges)), unit="resp", desc="eval")
    people = "people" in judges

    def on_progress(stage: str, k: int) -> None:
        bar.set_description(f"eval: {stage}", refresh=False)
        bar.update(k)

    try:
        result = evaluate.compare(
            options.a, options.b, n, judges, reward=options.reward, seed=options.seed,
            max_new_tokens=options.max_new_tokens, temperature=options.temperature,
            top_p=options.top_p, batch_size=options.batch_size, tie_tol=options.tie_tol,
            n_resamples=options.bootstrap, device=options.device, threads=options.threads,
            on_progress=on_progress)
    except evaluate.EvalError as err:
        bar.close()
        print(f"moss-lab eval: error: {err}")
        return 2
    bar.close()
    summary = result.summary()
    summary["saved"] = str(evaluate.save(result, name)) if options.save and not people else None
    if people:
        from ..labels import LabelStore

        store = LabelStore()
        try:
            path, summary["queued"] = evaluate.save_with_people(result, store, name)
        finally:
            store.close()
        summary["saved"], summary["people"] = str(path), name
    if result.judges:
        for line in evaluate.report_lines(summary):
            print(line)
    if people:
        print(f"  people: {summary['queued']} blind pairs queued for the app's Label tab "
              f"(eval {name}); their verdicts so far: moss-lab eval --people {name}")
    if summary["saved"]:
        print(f"  judgements: {summary['saved']}  (moss-lab board --judge {judges[0]})")
    print(json.dumps(summary))
    return 0


def show_people(name: str, bootstrap: int, seed: int) -> int:
    """`moss-lab eval --people NAME`: the people's verdicts so far (last line: JSON)."""
    from .. import evaluate

    try:
        result = evaluate.people_verdicts(name, n_resamples=bootstrap, seed=seed)
    except evaluate.EvalError as err:
        print(f"moss-lab eval: error: {err}")
        return 2
    for line in evaluate.people_lines(result):
        print(line)
    print(json.dumps(result))
    return 0
