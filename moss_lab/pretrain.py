"""Step 1 of the pipeline: pretrain a tiny causal LM on the toy world's corpus (Lab 01).

The corpus mixes good and bad answers on purpose: the base model must be able to say
both, so that human feedback has something to choose between.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable

import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from . import toyworld

# Model sizes: name -> (layers, width, heads). Dropout is 0 so losses compare exactly.
PRESETS: dict[str, tuple[int, int, int]] = {
    "xs": (2, 64, 4),   # ~0.12M parameters: the laptop default
    "s": (4, 128, 4),   # ~0.83M parameters: better reward models, ~4x slower
    "xs-deep": (4, 64, 4),  # ~0.22M: xs with twice the layers; a reward model needs the
                            # depth (the prompt's topic and repeats), benchmarks/reward_model.py
}


@dataclass
class PretrainConfig:
    size: str = "xs"
    seed: int = 0
    n_texts: int = 16_000     # corpus size, sampled from the grammar
    epochs: int = 5
    batch_size: int = 64
    lr: float = 3e-3          # tiny random models need a high rate; 1e-3 was far too slow
    warmup_steps: int = 50


def make_model(tokenizer: PreTrainedTokenizerFast, size: str = "xs") -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 of the given size preset, dropout 0."""
    if size not in PRESETS:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(PRESETS)}")
    n_layer, n_embd, n_head = PRESETS[size]
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=tokenizer.model_max_length, n_embd=n_embd,
        n_layer=n_layer, n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def corpus_ids(tokenizer: PreTrainedTokenizerFast, n_texts: int, seed: int) -> list[list[int]]:
    """Token ids of <bos> prompt response [<eos>] for each corpus text."""
    texts = toyworld.sample_corpus(n_texts, seed=seed)
    enc = tokenizer([p + r for p, r, _ in texts]).input_ids
    return [ids + [tokenizer.eos_token_id] if ended else ids
            for ids, (_, _, ended) in zip(enc, texts)]


def pretrain(
    tokenizer: PreTrainedTokenizerFast,
    config: PretrainConfig,
    on_step: Callable[[int, int, float], None] | None = None,
) -> tuple[GPT2LMHeadModel, float]:
    """Train a fresh model with next-token cross-entropy; return (model, final loss).

    Deterministic for a given config: one seed drives the corpus, the init and the order.
    `on_step(step, total_steps, loss)` is called after every step (progress bars).
    """
    torch.manual_seed(config.seed)
    model = make_model(tokenizer, config.size)
    data = corpus_ids(tokenizer, config.n_texts, config.seed)
    pad = tokenizer.pad_token_id
    steps_per_epoch = math.ceil(len(data) / config.batch_size)
    total = steps_per_epoch * config.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    # linear warmup, then cosine decay to 10% of the peak rate
    def schedule(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    rng = random.Random(config.seed)
    model.train()
    step, ema = 0, None
    for _ in range(config.epochs):
        order = list(range(len(data)))
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            batch = [data[i] for i in order[start:start + config.batch_size]]
            width = max(map(len, batch))
            ids = torch.full((len(batch), width), pad)
            for row, seq in enumerate(batch):  # right padding: positions start at 0
                ids[row, : len(seq)] = torch.tensor(seq)
            mask = ids != pad
            labels = ids.masked_fill(~mask, -100)
            loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
            step += 1
            if on_step:
                on_step(step, total, ema)
    model.eval()
    return model, float(ema)
