"""The toy world's pieces a PPO run needs: a cached toy reward model, prompts, ptx texts.

`toy_reward_model_dir()` trains a reward model on simulated-annotator preferences
between two samples of the toy base model (the pipeline of Lab 03), once, and caches it
in the data home next to the base model. The gold score only labels the pairs through
the noisy annotator; PPO then trains against this learned proxy, never against gold.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import files, toyworld
from ..models import build_toy_model, resolve_toy
from ..paths import models_dir

TOY_RM_VERSION = 3
TOY_RM_PAIRS = 4000
TOY_RM_SEED = 0


def toy_reward_model_dir(policy: str = "toy") -> Path:
    """Folder of the toy reward model for a toy policy (trained on first use, ~45 s)."""
    size = resolve_toy(policy) or "xs"
    target = models_dir() / f"toy-rm-{size}-seed{TOY_RM_SEED}-n{TOY_RM_PAIRS}-v{TOY_RM_VERSION}"
    if (target / "rm_info.json").is_file():
        return target
    base = build_toy_model(size, seed=0)
    model, tokenizer, info = _train(base, TOY_RM_SEED, TOY_RM_PAIRS)
    with files.building(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files.write_json(tmp / "rm_info.json", info)  # written last: the cache is complete
    return target


def _train(base: Path, seed: int, n_pairs: int):
    """Train with moss_lab.reward (the Lab 03 library)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..preferences import toy_pairs
    from ..reward import RewardConfig, train_reward_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        policy = AutoModelForCausalLM.from_pretrained(base).eval()
        tokenizer = AutoTokenizer.from_pretrained(base)
        annotator = toyworld.SimulatedAnnotator(noise=1.0, seed=seed)
        pairs = toy_pairs(policy, tokenizer, n_pairs, annotator, seed=seed)
        model, rm_tokenizer, metrics = train_reward_model(
            pairs, RewardConfig(base=str(base), seed=seed))
    finally:
        torch.set_num_threads(threads)
    info = {"base": str(base), "seed": seed, "pairs": n_pairs, "version": TOY_RM_VERSION,
            "metrics": {k: v for k, v in (metrics or {}).items()
                        if isinstance(v, (int, float, str, bool))}}
    return model, rm_tokenizer, info


def toy_ptx_texts(n: int, seed: int = 0) -> list[str]:
    """Base-model data for the ptx loss: prompt + response texts of the toy corpus."""
    return [p + r for p, r, _ in toyworld.sample_corpus(n, seed=seed + 12345)]
