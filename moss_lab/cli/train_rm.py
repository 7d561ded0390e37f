"""`moss-lab train-rm`: train a reward model on preference pairs.

    moss-lab train-rm                         toy world: sample pairs from the base model,
                                              label them with the simulated annotator
    moss-lab train-rm --data pairs.jsonl      our JSONL records (prompt/chosen/rejected...)
    moss-lab train-rm --hh hh.jsonl           Anthropic HH-RLHF lines ({"chosen", "rejected"})

The deeper setup of benchmarks/reward_model.py (seed 0: 0.848 gold agreement in 42 s of
training; 10% of the pairs are held out, so it trains on 9000 like the benchmark):
    moss-lab train-rm --noise 0.6 --pairs 10000 --base toy-xs-deep --epochs 3 --min-lr-ratio 0 \
        --no-freeze-embeddings --lm-coef 0.5 --attn-implementation eager --threads 2

The run folder (default: <data home>/runs/rm-<time>) gets config.json, metrics.jsonl,
result.json and the model in model/. Ctrl-C stops after the current step and still saves.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..configs import parse_args
from ..reward import RewardConfig
from .stop import StopOnCtrlC


@dataclass
class TrainRM:
    """Train a reward model on preference pairs (default: simulated pairs from the toy world)."""

    data: Path | None = None
    """JSONL file of preference records (prompt, chosen, rejected, ...)."""
    hh: Path | None = None
    """JSONL file in the Anthropic HH-RLHF format ({"chosen", "rejected"} per line)."""
    pairs: int = 4000
    """Toy world: how many pairs to sample."""
    policy: str = "toy"
    """Toy world: the model that writes the responses."""
    noise: float = 1.0
    """Toy world: the simulated annotator's noise (0.6 agrees with gold on ~90% of pairs)."""
    length_bias: float = 0.0
    """Toy world: the annotator's preference for longer answers."""
    max_new_tokens: int = 40
    """Toy world: the longest response, in tokens."""
    save_pairs: Path | None = None
    """Also write the pairs used to this JSONL file."""
    out: Path | None = None
    """The run folder (default: <data home>/runs/rm-<time>)."""
    config: RewardConfig = field(default_factory=RewardConfig)
    """Training (moss_lab.reward.RewardConfig)."""


def load_pairs(options: TrainRM) -> list:
    from .. import preferences

    if options.data and options.hh:
        raise preferences.PreferenceError("give either --data or --hh, not both")
    if options.data:
        return preferences.read_jsonl(options.data)
    if options.hh:
        return preferences.read_hh_jsonl(options.hh)
    from ..models import load_policy
    from ..toyworld import SimulatedAnnotator

    config = options.config
    model, tokenizer = load_policy(options.policy, device=config.device, threads=config.threads)
    annotator = SimulatedAnnotator(noise=options.noise, length_bias=options.length_bias,
                                   seed=config.seed)
    t0 = time.perf_counter()
    pairs = preferences.toy_pairs(model, tokenizer, options.pairs, annotator, seed=config.seed,
                                  max_new_tokens=options.max_new_tokens)
    agree = preferences.gold_agreement(pairs)
    seconds = time.perf_counter() - t0
    print(f"sampled {len(pairs)} pairs from {options.policy!r} in {seconds:.1f} s; "
          f"the annotator agrees with the gold score on {agree:.1%} of them")
    return pairs


def _f3(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"  # None: only ties, or nothing held out


def main(argv: list[str]) -> int:
    from tqdm.auto import tqdm

    from .. import preferences
    from ..paths import runs_dir
    from ..reward import train_reward_model
    from ..run_folder import new_run_name

    options = parse_args(TrainRM, argv, prog="moss-lab train-rm")
    try:
        pairs = load_pairs(options)
    except preferences.PreferenceError as err:
        print(f"moss-lab train-rm: error: {err}")
        return 2
    if options.save_pairs:
        print(f"pairs written to {preferences.write_jsonl(pairs, options.save_pairs)}")
    config = options.config
    out = options.out or runs_dir() / new_run_name("rm")
    bar = tqdm(unit="step", desc="reward model")

    def show(m: dict) -> None:
        if "eval/acc_labels" in m:  # after an epoch: the held-out figures, on their own line
            gold = m.get("eval/acc_gold")
            gold_txt = f"  acc_gold {gold:.3f}" if gold is not None else ""
            bar.write(f"epoch {m['epoch']:.3g}  held-out: loss {_f3(m['eval/loss'])}  "
                      f"acc_labels {_f3(m['eval/acc_labels'])}{gold_txt}")
            return
        if bar.total is None:  # the first step tells the steps per epoch: step / epoch
            bar.total = round(m["step"] / m["epoch"]) * config.epochs
        bar.update(1)
        bar.set_postfix(loss=f"{m['loss']:.3f}", acc=f"{m['train/accuracy']:.2f}", refresh=False)

    with StopOnCtrlC("step") as stop:
        try:
            _, _, final = train_reward_model(pairs, config, run_dir=out, on_metrics=show,
                                             should_stop=stop)
        finally:
            bar.close()
    gold = final.get("acc_gold")
    print(f"done in {final['seconds']:.1f} s ({final['steps']} steps"
          f"{', stopped early' if final['stopped'] else ''}): held-out accuracy vs labels "
          f"{_f3(final.get('acc_labels'))}"
          + (f", vs gold {gold:.3f}" if gold is not None else ""))
    print(f"reward model saved to {final['run_dir']}/model")
    return 0
