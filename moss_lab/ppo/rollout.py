"""Phase 1 of a PPO iteration: the rollout (Lab 06).

    prompts -> sample responses (KV cache) -> one forward pass each of the policy, the
    frozen reference and the critic over prompt + response -> reward-model scores

Layout: prompts are left-padded (P columns), responses right-padded (T columns), so the
response starts at column P in every row. The attention mask hides both paddings and the
position ids count real tokens only, so padding never shifts a position.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import torch

from ..sampling import decode_responses
from ..scoring import position_ids
from .losses import entropy_from_logits, token_logprobs


@dataclass
class Rollout:
    prompts: list[str]
    responses: list[str]
    prompt_ids: torch.Tensor       # (B, P) left-padded
    prompt_mask: torch.Tensor      # (B, P)
    response_ids: torch.Tensor     # (B, T) right-padded after <eos>
    mask: torch.Tensor             # (B, T) float: 1 on response tokens, <eos> included
    ended: torch.Tensor            # (B,) bool: the response stopped with <eos>
    logp: torch.Tensor             # (B, T) log pi_old(token), at the sampling temperature
    ref_logp: torch.Tensor         # (B, T) log pi_ref(token)
    values: torch.Tensor           # (B, T) V(state before token t)
    scores: torch.Tensor           # (B,) reward-model score of each response
    entropy: torch.Tensor          # (B, T) entropy of pi_old at each token
    timings: dict = field(default_factory=dict)

    def inputs(self, rows=slice(None)) -> dict:
        """Model inputs for prompt + response of the given rows."""
        return sequence_inputs(self.prompt_ids[rows], self.prompt_mask[rows],
                               self.response_ids[rows], self.mask[rows])


def sequence_inputs(prompt_ids, prompt_mask, response_ids, response_mask) -> dict:
    """input_ids, attention_mask and position_ids for prompt + response."""
    mask = torch.cat([prompt_mask, response_mask.to(prompt_mask.dtype)], dim=1)
    return {"input_ids": torch.cat([prompt_ids, response_ids], dim=1),
            "attention_mask": mask, "position_ids": position_ids(mask)}


def _cache_kwarg(model) -> str:
    """transformers 5 calls the KV cache `cache`; 4.x called it `past_key_values`."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _keep_last(model, n: int) -> dict:
    """Ask for the logits of the last n positions only, when the model supports it (a
    50k-word vocabulary times every prompt position is most of the memory otherwise)."""
    return {"logits_to_keep": n} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


def _cache_of(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches top_p; others -> -inf."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    drop = probs.cumsum(dim=-1) - probs >= top_p   # mass before this token already enough
    drop[..., 0] = False
    drop = drop.scatter(-1, order, drop)
    return logits.masked_fill(drop, float("-inf"))


@torch.no_grad()
def sample(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int,
           eos_id: int, pad_id: int, temperature: float = 1.0, top_p: float = 1.0,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample responses token by token with a KV cache; stop at <eos>.

    Returns (response_ids (B, T), mask (B, T)): tokens after a row's <eos> are pad and
    masked out; T <= max_new_tokens (the loop ends when every row has ended).
    """
    B = prompt_ids.shape[0]
    cache_arg = _cache_kwarg(model)
    attn = prompt_mask.clone()
    pos = position_ids(attn)
    out = model(input_ids=prompt_ids, attention_mask=attn, position_ids=pos, use_cache=True,
                **_keep_last(model, 1))
    next_pos = pos[:, -1:] + 1
    done = torch.zeros(B, dtype=torch.bool, device=prompt_ids.device)
    tokens, masks = [], []
    for _ in range(max_new_tokens):
        logits = top_p_filter(out.logits[:, -1].float() / temperature, top_p)
        probs = torch.softmax(logits, dim=-1)
        # multinomial on the CPU generator keeps runs reproducible on any device
        tok = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(probs.device)
        tok = torch.where(done, torch.full_like(tok, pad_id), tok)
        masks.append(~done)
        tokens.append(tok)
        done = done | (tok == eos_id)
        if bool(done.all()):
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        out = model(input_ids=tok[:, None], attention_mask=attn, position_ids=next_pos,
                    use_cache=True, **{cache_arg: _cache_of(out)})
        next_pos = next_pos + 1
    return torch.stack(tokens, dim=1), torch.stack(masks, dim=1).float()


def policy_forward(model, inputs: dict, response_ids: torch.Tensor,
                   temperature: float = 1.0, with_entropy: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log pi(response token), entropy or None) at each response position, both (B, T).

    The logits at column P - 1 + t predict response token t: the last T + 1 columns but one.
    No KV cache: nothing follows this pass (a cache would cost memory, and under gradient
    checkpointing a recomputed block would append to it twice).
    """
    T = response_ids.shape[1]
    logits = model(**inputs, use_cache=False,
                   **_keep_last(model, T + 1)).logits[:, -T - 1:-1].float() / temperature
    entropy = entropy_from_logits(logits) if with_entropy else None
    return token_logprobs(logits, response_ids), entropy


def critic_forward(critic, inputs: dict, n_prompt: int) -> torch.Tensor:
    """Per-token values (B, T): the scalar head applied to every position, not only the last.

    A sequence-classification model (the reward model's architecture) scores the last
    token; the critic needs V(state) before each response token, i.e. the head's output
    at columns P - 1 ... P + T - 2.
    """
    body = getattr(critic, critic.base_model_prefix)
    hidden = body(**inputs, use_cache=False).last_hidden_state[:, n_prompt - 1:-1]
    return critic.score(hidden).squeeze(-1).float()


@torch.no_grad()
def rollout(policy, ref_policy, critic, reward_fn, tokenizer, prompts: list[str],
            max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
            generator: torch.Generator | None = None) -> Rollout:
    """Sample a response per prompt and compute everything PPO needs about it.

    `reward_fn(prompts, responses) -> Tensor (B,)` scores the response texts (see
    setup.make_reward); `timings` records seconds spent in model passes.
    """
    device = next(policy.parameters()).device
    timings: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        timings[name] = time.perf_counter() - start
        return result

    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    prompt_ids = enc.input_ids.to(device)
    prompt_mask = enc.attention_mask.to(device)
    n_prompt = prompt_ids.shape[1]
    response_ids, mask = timed("generate", sample, policy, prompt_ids, prompt_mask,
                               max_new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id,
                               temperature, top_p, generator)
    ended = (response_ids == tokenizer.eos_token_id).any(dim=1)
    inputs = sequence_inputs(prompt_ids, prompt_mask, response_ids, mask)
    logp, entropy = timed("policy_forward", policy_forward, policy, inputs, response_ids,
                          temperature)
    ref_logp, _ = timed("ref_forward", policy_forward, ref_policy, inputs, response_ids,
                        temperature, with_entropy=False)
    values = timed("critic_forward", critic_forward, critic, inputs, n_prompt)
    # text for the reward model: the tokens before <eos> (the RM appends its own <eos>)
    responses, _ = decode_responses(tokenizer, list(prompts), response_ids)
    scores = timed("reward_forward", reward_fn, prompts, responses).to(device).float()
    return Rollout(prompts=list(prompts), responses=responses, prompt_ids=prompt_ids,
                   prompt_mask=prompt_mask, response_ids=response_ids, mask=mask,
                   ended=ended, logp=logp * mask, ref_logp=ref_logp * mask,
                   values=values * mask, scores=scores, entropy=entropy,
                   timings=timings)
