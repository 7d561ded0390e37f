"""DPO runs through trl's DPOTrainer (Lab 09), writing the run folder PPO writes.

    train_dpo(DPOTrainConfig(), run_dir="runs/dpo-1")                  simulated toy labels
    train_dpo(DPOTrainConfig(data="labels"))                           your votes in the app
    train_dpo(DPOTrainConfig(data="pairs.jsonl"))                      prompt/chosen/rejected

The loss is moss_lab.methods.dpo (checked against trl in tests/test_methods_trl.py). DPO
needs no reward model to train; the evaluation still scores the policy's samples with
`eval_reward` (reward/score) and the gold score (reward/gold), like every other method.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .training import MethodConfig, MethodError


@dataclass
class DPOTrainConfig(MethodConfig):
    """DPO on preference pairs (defaults: simulated toy labels, a CPU run of seconds)."""

    data: str = "toy"
    """The preference pairs: "toy" (pairs of base-model samples labelled by the simulated
    annotator), "labels" (the votes in the app's label store), a .sqlite label store, or a
    .jsonl file of prompt/chosen/rejected records. Ties are left out."""
    annotator: str | None = None
    """Labels and files (not "toy"): train on the pairs this person labelled (None: all).
    In the app's class mode a student's run always trains on their own votes."""
    pairs: int = 1024
    """data="toy": how many pairs to sample and label."""
    annotator_noise: float = 1.0
    """data="toy": the simulated annotator's noise (0: always agrees with gold)."""
    min_pairs: int = 16
    """Refuse to train on fewer pairs (ties not counted) than this."""
    epochs: int = 1
    """Passes over the pairs."""
    batch_size: int = 32
    """Pairs per optimiser step."""
    lr: float = 3e-4
    """Adam learning rate (trl's default 1e-6 is for real models; a tiny one needs more)."""
    beta: float = 0.1
    """DPO's beta: the implicit reward is beta * (log pi - log pi_base); a smaller beta
    lets the policy move further from the base model."""
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"
    """The loss (moss_lab.methods.dpo.dpo_loss): "sigmoid" (DPO), "ipo", "hinge" (SLiC),
    "robust" (rDPO, with label_smoothing as the assumed label-flip rate)."""
    label_smoothing: float = 0.0
    """loss_type="robust": the share of labels assumed flipped (< 0.5)."""
    max_grad_norm: float = 1.0
    """Global gradient clipping."""
    eval_reward: str = "toy"
    """The reward model that scores the evaluation's samples (reward/score): "toy", "gold"
    or a reward-model folder. DPO itself trains without one."""

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.pairs >= 1, "pairs must be >= 1"),
            (self.min_pairs >= 1, "min_pairs must be >= 1"),
            (self.annotator_noise >= 0, "annotator_noise must be >= 0"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"), (self.beta > 0, "beta must be > 0"),
            (0 <= self.label_smoothing < 0.5, "label_smoothing must be in [0, 0.5)"),
            (self.max_grad_norm > 0, "max_grad_norm must be > 0")]


def load_pairs(config: DPOTrainConfig, model=None, tokenizer=None) -> list:
    """The preference records config.data names (ties included, for the count)."""
    from .. import preferences, toyworld
    from ..labels import LabelStore
    from ..paths import labels_db

    if config.data == "toy":
        annotator = toyworld.SimulatedAnnotator(noise=config.annotator_noise, seed=config.seed)
        return preferences.toy_pairs(model, tokenizer, config.pairs, annotator, seed=config.seed,
                                     max_new_tokens=config.max_new_tokens,
                                     temperature=config.temperature)
    path = labels_db() if config.data == "labels" else Path(config.data)
    if not path.is_file():
        what = "the app's label store" if config.data == "labels" else "data file"
        raise MethodError(f"{what} {path} not found: label pairs in the app's Label tab, give "
                          "a .jsonl of prompt/chosen/rejected records, or use data='toy'")
    if path.suffix in (".sqlite", ".db") or config.data == "labels":
        store = LabelStore(path)
        try:
            return store.preferences(include_ties=True, annotator=config.annotator or None)
        finally:
            store.close()
    try:
        records = preferences.read_jsonl(path)
    except preferences.PreferenceError as err:
        raise MethodError(str(err)) from None
    return [r for r in records if r.annotator == config.annotator] if config.annotator \
        else records


def usable_pairs(prefs: list, config: DPOTrainConfig) -> list:
    """The pairs that are not ties; MethodError (saying how many are needed) when too few."""
    ties = sum(p.tie for p in prefs)
    usable = [p for p in prefs if not p.tie]
    if prefs and not usable:
        raise MethodError(f"all {len(prefs)} labels in {config.data!r} are ties: DPO learns which "
                          "response won, so a tie carries no signal. Label pairs where one "
                          "response is better")
    if len(usable) < config.min_pairs:
        tie_note = f" ({ties} ties left out)" if ties else ""
        whose = f" by {config.annotator}" if config.annotator and config.data != "toy" else ""
        raise MethodError(f"too few preference pairs for DPO: {len(usable)}{tie_note} in "
                          f"{config.data!r}{whose}, at least {config.min_pairs} are needed "
                          f"(min_pairs). "
                          f"Label {config.min_pairs - len(usable)} more, or use data='toy'")
    return usable


def train_dpo(config: DPOTrainConfig | None = None, run_dir=None, on_metrics=None,
              should_stop=None, pairs: list | None = None):
    """Fine-tune config.policy with DPO on preference pairs; return a MethodResult.

    pairs: Preference records to use instead of config.data. run_dir: config.json,
    metrics.jsonl (one row per evaluation), samples.jsonl, result.json and policy/
    (None: nothing written). on_metrics(row) after each row; should_stop() checked after
    every step. Raises MethodError before writing anything when the data cannot be used.
    """
    from .training import keep_threads, load_policy_for

    config = config or DPOTrainConfig()
    with keep_threads():
        prefs = list(pairs) if pairs is not None else None
        if prefs is None and config.data != "toy":
            prefs = load_pairs(config)
        if prefs is not None:
            usable_pairs(prefs, config)  # bad data is refused before the model loads
        model, base, tokenizer, device = load_policy_for(config)
        if prefs is None:  # simulated toy labels need the model
            prefs = load_pairs(config, base, tokenizer)
        usable = usable_pairs(prefs, config)
        return _train(config, prefs, usable, model, base, tokenizer, device, run_dir,
                      on_metrics, should_stop)


def _train(config, prefs, usable, model, base, tokenizer, device, run_dir, on_metrics,
           should_stop):
    import copy

    import trl
    from datasets.utils import logging as datasets_logging

    from .. import preferences
    from .training import Evaluator, make_reward_fn, run_trl, trl_args

    dataset = preferences.to_dataset(usable)
    evaluator = Evaluator(base, tokenizer, make_reward_fn(config.eval_reward, config, tokenizer,
                                                          device), config)
    steps = math.ceil(len(usable) / config.batch_size) * config.epochs
    agreement = preferences.gold_agreement(usable)  # the labels' own agreement with gold

    def make_trainer(callback, output_dir):
        args = trl.DPOConfig(**trl_args(
            config, device, output_dir, num_train_epochs=config.epochs, learning_rate=config.lr,
            max_grad_norm=config.max_grad_norm, per_device_train_batch_size=config.batch_size,
            beta=config.beta, loss_type=[config.loss_type], label_smoothing=config.label_smoothing))
        bars = datasets_logging.is_progress_bar_enabled()
        datasets_logging.disable_progress_bar()  # trl tokenises the pairs: no bars of its own
        try:
            # DPOTrainer patches the forward of the models it gets: a copy for the reference
            return trl.DPOTrainer(model=model, ref_model=copy.deepcopy(base), args=args,
                                  train_dataset=dataset, processing_class=tokenizer,
                                  callbacks=[callback])
        finally:
            if bars:
                datasets_logging.enable_progress_bar()

    return run_trl("dpo", config, make_trainer, model, base, tokenizer, evaluator, run_dir,
                   on_metrics, should_stop, steps, config.batch_size,
                   {"n_pairs": len(usable), "n_ties": len(prefs) - len(usable),
                    "labels_gold_agreement": agreement})
