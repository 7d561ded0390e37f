"""Sampling responses from a causal LM: prompts in, response texts out."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Samples:
    prompts: list[str]
    responses: list[str]
    ended: list[bool]          # True when the response stopped with <eos>
    response_ids: torch.Tensor  # (batch, new_tokens), right-padded with pad_token_id


def response_text(prompt: str, text: str) -> str:
    """A decoded response as it continues `prompt`: trailing whitespace dropped, and
    leading whitespace too when the prompt already ends with some (the toy world's
    'Assistant: '). After a prompt ending in 'Assistant:' (HH-RLHF) the response keeps its
    leading space, so prompt + response is the text the policy wrote and the reward model
    reads it as it read its training pairs."""
    text = text.rstrip()
    return text.lstrip() if not prompt or prompt[-1:].isspace() else text


def decode_responses(tokenizer, prompts: list[str], response_ids) -> tuple[list[str], list[bool]]:
    """Sampled response ids as the texts the reward model reads (the tokens before <eos>,
    see response_text) and whether each response ended with <eos>."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    ended = (response_ids == eos).any(dim=1).cpu().tolist()
    keep = response_ids.masked_fill(response_ids == eos, pad).cpu()
    texts = tokenizer.batch_decode(keep, skip_special_tokens=True)
    return [response_text(p, t) for p, t in zip(prompts, texts)], ended


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 40,
             temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None) -> Samples:
    """Sample one response per prompt (left-padded batch, stop at <eos>)."""
    if seed is not None:
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    enc = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
    out = model.generate(
        **enc, do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
        max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    new = out[:, enc.input_ids.shape[1]:]
    ended = (new == tokenizer.eos_token_id).any(dim=1).tolist()
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    return Samples(list(prompts), [response_text(p, t) for p, t in zip(prompts, texts)],
                   ended, new.cpu())
