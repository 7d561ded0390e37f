"""The toy world's pieces a PPO run needs: a cached toy reward model, prompts, ptx texts.

`toy_reward_model_dir()` gives a reward model trained on simulated-annotator preferences
between two samples of the toy base model (the pipeline of Lab 03), cached in the data
home next to the base model. The package ships the one for "toy" (copied on first use;
tools/ship_toy_models.py rebuilds it); others are trained on first use (~1.5 min). The
gold score only labels the pairs through the noisy annotator; PPO then trains against
this learned proxy, never against gold.

The recipe (TOY_RM_CONFIG) is benchmarks/reward_model.py's default setup: a 4-layer base
(toy-xs-deep), 9000 pairs from a careful annotator (noise 0.6, ~0.90 agreement with
gold), 3 epochs with the LM term: ~0.87 held-out agreement with gold in under a minute
on 2 cores, where the 2-layer base plateaus near 0.78-0.82.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .. import files, toyworld
from ..models import build_toy_model, copy_shipped, resolve_toy
from ..paths import models_dir
from ..progress import phase, simulated_pairs

TOY_RM_VERSION = 4
TOY_RM_PAIRS = 9000       # training pairs
TOY_RM_EVAL_PAIRS = 1000  # held-out pairs (other prompts and seeds), for rm_info.json
TOY_RM_SEED = 0
TOY_RM_NOISE = 0.6        # the annotator agrees with gold on ~0.90 of the pairs
# RewardConfig fields of the toy reward model; benchmarks/reward_model.py measures them.
# The xs policy's reward model starts from the 4-layer xs-deep base (same tokenizer), not
# from the policy's 2 layers, which plateau near 0.8 gold agreement; a toy policy of
# another size keeps its own base (toy_rm_config).
TOY_RM_CONFIG = dict(base="toy-xs-deep", epochs=3, lr=2e-3, min_lr_ratio=0.0,
                     freeze_embeddings=False, lm_coef=0.5, eval_every_epoch=False,
                     attn_implementation="eager")
RM_INFO_FILE = "rm_info.json"  # written last: its presence marks a complete build


def toy_reward_model_dir(policy: str = "toy", force: bool = False) -> Path:
    """Folder of the toy reward model for a toy policy: the cache, else the shipped copy,
    else (or with force=True) trained from scratch (~1.5 min on one core; progress and
    Stop through moss_lab.progress.phase)."""
    size = resolve_toy(policy) or "xs"
    target = models_dir() / f"toy-rm-{size}-seed{TOY_RM_SEED}-n{TOY_RM_PAIRS}-v{TOY_RM_VERSION}"
    if not force and (target / RM_INFO_FILE).is_file():
        return target
    if not force and copy_shipped(target, RM_INFO_FILE):
        return target
    base = build_toy_model(size, seed=0)
    model, tokenizer, info = _train(base, toy_rm_config(size), TOY_RM_PAIRS, TOY_RM_EVAL_PAIRS)
    with files.building(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files.write_json(tmp / RM_INFO_FILE, info)  # written last: the cache is complete
    return target


def toy_rm_config(size: str = "xs"):
    """The RewardConfig of the toy reward model for the toy policy of this size."""
    from ..reward import RewardConfig

    base = TOY_RM_CONFIG["base"] if size == "xs" else f"toy-{size}"
    return RewardConfig(**{**TOY_RM_CONFIG, "base": base, "seed": TOY_RM_SEED})


def _train(base: Path, config, n_pairs: int, n_eval: int):
    """Sample pairs from the policy `base`, train `config` with moss_lab.reward (the Lab 03
    library), evaluate on n_eval held-out pairs: for the xs policy, what
    benchmarks/reward_model.py does with its default setup and one thread."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..reward import train_reward_model

    what = "building the toy reward model (first use only)"
    seed = config.seed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        phase(what + ": loading the base model")
        policy = AutoModelForCausalLM.from_pretrained(base).eval()
        tokenizer = AutoTokenizer.from_pretrained(base)
        pairs = simulated_pairs(policy, tokenizer, n_pairs,
                                toyworld.SimulatedAnnotator(TOY_RM_NOISE, seed=seed), seed=seed,
                                what=f"{what}: generating {n_pairs} pairs")
        held_out = simulated_pairs(policy, tokenizer, n_eval,
                                   toyworld.SimulatedAnnotator(TOY_RM_NOISE, seed=seed + 1),
                                   seed=seed + 10_000,
                                   what=f"{what}: generating {n_eval} held-out pairs")
        steps = math.ceil(n_pairs / config.batch_size)
        # every step reports its progress, and phase() ends the build when Stop was pressed
        model, rm_tokenizer, metrics = train_reward_model(
            pairs, config, eval_pairs=held_out,
            on_metrics=lambda row: phase(f"{what}: training", row["step"], steps * config.epochs))
    finally:
        torch.set_num_threads(threads)
    info = {"policy": base.name, "base": config.base, "seed": seed, "pairs": n_pairs,
            "noise": TOY_RM_NOISE, "version": TOY_RM_VERSION,
            "metrics": {k: v for k, v in (metrics or {}).items()
                        if isinstance(v, (int, float, str, bool))}}
    return model, rm_tokenizer, info


def toy_ptx_texts(n: int, seed: int = 0) -> list[str]:
    """Base-model data for the ptx loss: prompt + response texts of the toy corpus."""
    return [p + r for p, r, _ in toyworld.sample_corpus(n, seed=seed + 12345)]
