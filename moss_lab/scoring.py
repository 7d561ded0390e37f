"""How a reward model reads a (prompt, response) pair: one format for training and use.

The text is prompt + response followed by <eos>, exactly as the policy produced it, and
the score is the scalar head's output at the last non-pad token (the <eos>). trl's
RewardTrainer also appends <eos> to standard-text pairs, so data exported from here
trains the same way there.
"""
from __future__ import annotations

import torch


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count real tokens only (0, 1, 2, ... from the first non-pad token),
    so that left padding does not shift a sequence's positions."""
    return (attention_mask.cumsum(dim=1) - 1).clamp(min=0)


def reward_inputs(tokenizer, prompts: list[str], responses: list[str], device=None) -> dict:
    """Tokenize prompt + response + <eos>, left-padded; input_ids, attention_mask, position_ids."""
    texts = [p + r for p, r in zip(prompts, responses)]
    ids = [seq + [tokenizer.eos_token_id] for seq in tokenizer(texts).input_ids]
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, width - len(seq):] = torch.tensor(seq)
    mask = (input_ids != pad).long()
    batch = {"input_ids": input_ids, "attention_mask": mask, "position_ids": position_ids(mask)}
    return {k: v.to(device) for k, v in batch.items()} if device is not None else batch


def score(reward_model, tokenizer, prompts: list[str], responses: list[str],
          batch_size: int = 256) -> torch.Tensor:
    """Reward-model scores r(prompt, response), shape (n,), on the CPU, no gradient."""
    device = next(reward_model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            batch = reward_inputs(tokenizer, prompts[i:i + batch_size],
                                  responses[i:i + batch_size], device)
            out.append(reward_model(**batch).logits[:, 0].float().cpu())
    return torch.cat(out) if out else torch.zeros(0)
