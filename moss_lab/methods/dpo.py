"""Direct Preference Optimization (Rafailov et al. 2023), the loss of Lab 09 "DPO".

DPO trains the policy on preference pairs (prompt, chosen y_w, rejected y_l) without a
reward model: the implicit reward of a response is

    r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x))

and the Bradley-Terry loss on the implicit rewards is the DPO loss. log pi(y|x) is the
SUM of the response tokens' log-probabilities (`response_logps`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ppo.rollout import policy_forward, sequence_inputs

DPO_LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust")


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float = 0.1, loss_type: str = "sigmoid", label_smoothing: float = 0.0,
             chosen_lengths: torch.Tensor | None = None,
             rejected_lengths: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss of a batch of pairs, and the implicit rewards of chosen and rejected.

    With the log-ratios  h_w = log pi(y_w) - log pi_ref(y_w),  h_l likewise, and
    delta = h_w - h_l (all shape (B,)):

        sigmoid  loss = -log sigmoid(beta * delta)                         (DPO, eq. 7)
                 with label smoothing eps (cDPO, the labels flipped with prob. eps):
                 loss = -(1 - eps) log sigmoid(beta delta) - eps log sigmoid(-beta delta)
        robust   loss = (-(1 - eps) log sigmoid(beta delta) + eps log sigmoid(-beta delta))
                        / (1 - 2 eps)                           (rDPO, Chowdhury et al. 2024)
        hinge    loss = max(0, 1 - beta * delta)                   (SLiC, Zhao et al. 2023)
        ipo      loss = (delta' - 1 / (2 beta))^2                  (IPO, Azar et al. 2023)
                 where delta' = h_w / |y_w| - h_l / |y_l| when the lengths (response
                 tokens) are given, as trl 1.16 does, and delta' = delta otherwise.

    The loss is the mean over pairs. Implicit rewards: beta * h_w and beta * h_l
    (detached: they are diagnostics, `rewards/chosen` and `rewards/rejected` in trl).
    trl 1.16's "sigmoid" has no label smoothing; with eps = 0 the two agree.
    """
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    delta = chosen_logratios - rejected_logratios
    eps = label_smoothing
    if loss_type == "sigmoid":
        losses = -(1 - eps) * F.logsigmoid(beta * delta) - eps * F.logsigmoid(-beta * delta)
    elif loss_type == "robust":
        losses = (-(1 - eps) * F.logsigmoid(beta * delta)
                  + eps * F.logsigmoid(-beta * delta)) / (1 - 2 * eps)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * delta)
    elif loss_type == "ipo":
        if chosen_lengths is not None and rejected_lengths is not None:
            delta = (chosen_logratios / chosen_lengths.clamp(min=1)
                     - rejected_logratios / rejected_lengths.clamp(min=1))
        losses = (delta - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"unknown DPO loss {loss_type!r}; choose one of {DPO_LOSS_TYPES}")
    chosen_rewards = beta * chosen_logratios.detach()
    rejected_rewards = beta * rejected_logratios.detach()
    return losses.mean(), chosen_rewards, rejected_rewards


def response_token_ids(tokenizer, prompt: str, response: str, add_eos: bool = True
                       ) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) as the model sees prompt + response (+ <eos>).

    The response starts where the tokens of the prompt alone and of prompt + response
    first differ (a token may merge across the boundary), as trl's DPOTrainer does.
    """
    prompt_ids = tokenizer(prompt).input_ids
    full_ids = tokenizer(prompt + response).input_ids
    n = 0
    while n < min(len(prompt_ids), len(full_ids)) and prompt_ids[n] == full_ids[n]:
        n += 1
    response_ids = full_ids[n:] + ([tokenizer.eos_token_id] if add_eos else [])
    return full_ids[:n], response_ids


def response_logps(model, tokenizer, prompts: list[str], responses: list[str],
                   add_eos: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(y|x) = sum_t log pi(y_t | x, y_<t) over the response tokens (<eos> included),
    and the number of response tokens |y|; both shape (B,).

    Prompts left-padded, responses right-padded, positions counting real tokens only
    (the layout of ppo.rollout). Gradients flow: this is the policy term of the loss.
    """
    device = next(model.parameters()).device
    pairs = [response_token_ids(tokenizer, p, r, add_eos) for p, r in zip(prompts, responses)]
    P = max(len(p) for p, _ in pairs)
    T = max(len(r) for _, r in pairs)
    pad = tokenizer.pad_token_id
    prompt_ids = torch.full((len(pairs), P), pad, dtype=torch.long)
    response_ids = torch.full((len(pairs), T), pad, dtype=torch.long)
    prompt_mask = torch.zeros(len(pairs), P, dtype=torch.long)
    response_mask = torch.zeros(len(pairs), T)
    for row, (p, r) in enumerate(pairs):
        prompt_ids[row, P - len(p):] = torch.tensor(p)
        prompt_mask[row, P - len(p):] = 1
        response_ids[row, :len(r)] = torch.tensor(r)
        response_mask[row, :len(r)] = 1
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    response_ids, response_mask = response_ids.to(device), response_mask.to(device)
    inputs = sequence_inputs(prompt_ids, prompt_mask, response_ids, response_mask)
    logp, _ = policy_forward(model, inputs, response_ids, with_entropy=False)
    return (logp * response_mask).sum(dim=1), response_mask.sum(dim=1)
