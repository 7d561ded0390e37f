"""Getting a PPO run's four models and its prompts ready (the trainer's setup phase).

    policy      the model being trained (a copy: the one passed in is never modified)
    reference   a frozen copy of the initial policy, the anchor of the KL penalty
    critic      the value model V(state), a separate network (PPO-max: init from the RM)
    reward      a function (prompts, responses) -> scores, usually a reward model

On a GPU (PPOConfig.precision, gradient_checkpointing, lora_rank): the policy and critic
keep fp32 weights (the trainer runs their forwards under bf16 autocast); the frozen
reference and a reward model loaded here are stored in bf16; LoRA adapters (peft) make
only a few matrices of the policy trainable, and the reference stays a separate frozen
copy of the initial policy (simplest; in bf16 it costs 2 bytes per parameter).
"""
from __future__ import annotations

import copy
import json
import random
import warnings
from pathlib import Path
from typing import Callable

import torch
from transformers import AutoModelForSequenceClassification

from .. import toyworld
from ..device import compute_dtype, pick_device
from ..models import load_policy
from ..reward import load_reward_model
from ..scoring import score
from .toy import toy_reward_model_dir


class RewardFunction:
    """Scores response texts: `reward(prompts, responses) -> Tensor (n,)`.

    `model`/`tokenizer` are set when it wraps a reward model (the critic can start from it).
    """

    def __init__(self, fn: Callable, model=None, tokenizer=None):
        self.fn, self.model, self.tokenizer = fn, model, tokenizer

    def __call__(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return torch.as_tensor(self.fn(prompts, responses), dtype=torch.float32)


def gold_reward(prompts: list[str], responses: list[str]) -> torch.Tensor:
    """ORACLE reward for teaching: the toy world's true score. Never the default."""
    return torch.tensor([toyworld.gold_score(p, r).total for p, r in zip(prompts, responses)])


def from_reward_model(model, tokenizer) -> RewardFunction:
    """A frozen reward model as a RewardFunction."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return RewardFunction(lambda p, r: score(model, tokenizer, p, r), model, tokenizer)


def make_reward(spec, config, tokenizer, device) -> RewardFunction:
    """spec: "toy", "gold", a folder, a model (uses the policy tokenizer), a (model,
    tokenizer) pair, a RewardFunction, or any callable (prompts, responses) -> scores."""
    if spec is None:
        spec = config.reward
    if isinstance(spec, RewardFunction):
        return spec
    if isinstance(spec, tuple):
        return from_reward_model(spec[0].to(device), spec[1])
    if isinstance(spec, torch.nn.Module):
        return from_reward_model(spec.to(device), tokenizer)
    if callable(spec):
        return RewardFunction(spec)
    if spec == "gold":
        return RewardFunction(gold_reward)
    if spec == "toy":
        spec = toy_reward_model_dir(config.policy if isinstance(config.policy, str) else "toy")
    if not spec or not Path(spec).is_dir():
        raise ValueError(f"reward model {spec!r} not found: give a folder saved with "
                         "save_pretrained (moss-lab train-rm), 'toy' or 'gold'")
    model, rm_tokenizer = load_reward_model(spec)  # a folder saved by moss-lab train-rm
    rm_tokenizer.padding_side = "left"
    return from_reward_model(model.to(device), rm_tokenizer)


def load_models(config, policy=None, reward_model=None):
    """(policy, tokenizer, reference, critic, reward_fn, device) for a run."""
    given = tuple(name for name, value in (("policy", policy), ("reward", reward_model))
                  if value is not None)
    config.check_inputs(given)  # a real-model preset without a policy, reward or prompts
    if config.device:
        pick_device(config.device)  # no CUDA here: a message that says what to do
    if policy is None:
        model, tokenizer = load_policy(config.policy, device=config.device, threads=config.threads)
    else:
        model, tokenizer = policy if isinstance(policy, tuple) else (policy, None)
        if tokenizer is None:
            raise ValueError("pass policy=(model, tokenizer)")
        model = copy.deepcopy(model)
        if config.device:
            model = model.to(pick_device(config.device))
    device = next(model.parameters()).device
    tokenizer.padding_side = "left"
    check_prompt_lengths(config, tokenizer, model)  # before anything is written
    check_new_tokens_fit(config, tokenizer, model)
    dtype = compute_dtype(config.precision, device)
    model = model.float()  # fp32 master weights (a checkpoint may be saved in bf16)
    ref = copy.deepcopy(model).to(dtype).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    reward = make_reward(reward_model, config, tokenizer, device)
    critic = make_critic(config, model, tokenizer, reward).to(device, torch.float32)
    if reward.model is not None and (reward_model is None or isinstance(reward_model, (str, Path))):
        reward.model.to(dtype)  # loaded here, frozen: bf16 halves it (a model passed in stays)
    if config.lora_rank:
        model = add_lora(model, config)
    # every model stays in eval mode: dropout off, so that the log-probabilities of the
    # rollout and of the update agree ("The N implementation details of RLHF")
    model, critic = model.eval(), critic.eval()
    if config.gradient_checkpointing:
        enable_checkpointing(model)
        enable_checkpointing(critic)
    return model, tokenizer, ref, critic, reward, device


# ---------------------------------------------------------------------------------------
# Memory savers: LoRA adapters and gradient checkpointing
# ---------------------------------------------------------------------------------------
# The attention projections by name: GPT-2 (c_attn: q, k, v in one), Llama, Qwen2, Mistral
# (q/k/v/o_proj), GPT-NeoX (query_key_value), Phi-3 (qkv_proj).
ATTENTION_LAYERS = ("c_attn", "q_proj", "k_proj", "v_proj", "o_proj", "query_key_value",
                    "qkv_proj")


def linear_layer_names(model) -> set[str]:
    """The last name part of every linear layer (nn.Linear, or GPT-2's Conv1D)."""
    return {name.rpartition(".")[2] for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"}


def lora_target_names(model, targets: str = "auto") -> list[str]:
    """The layer names that get LoRA adapters: `targets` split on commas, or with "auto"
    the attention projections this model has. A ValueError lists the names there are."""
    present = linear_layer_names(model)
    auto = targets.strip() == "auto"
    wanted = ATTENTION_LAYERS if auto else [t.strip() for t in targets.split(",") if t.strip()]
    found = [t for t in wanted if t in present]
    unknown = [t for t in wanted if t not in present and not auto]
    if unknown or not found:
        what = (f"has no layer named {', '.join(unknown)}" if unknown else
                "has none of the attention projections LoRA 'auto' knows "
                f"({', '.join(ATTENTION_LAYERS)})")
        raise ValueError(f"lora_targets: the policy ({type(model).__name__}) {what}; its "
                         f"linear layers are {', '.join(sorted(present))}: name some with "
                         "--lora-targets (comma-separated)")
    return found


def add_lora(model, config):
    """Inject LoRA adapters (peft) into the policy: W x + (alpha / r) B A x on the target
    layers, B = 0 at the start (so the policy starts as the base); every other weight is
    frozen. Returns the same transformers model (its forward and config unchanged), not
    peft's wrapper, so that the rollout and the update call it as before."""
    from peft import LoraConfig, get_peft_model

    targets = lora_target_names(model, config.lora_targets)
    conv1d = any(type(m).__name__ == "Conv1D" for name, m in model.named_modules()
                 if name.rpartition(".")[2] in targets)  # GPT-2 stores W transposed
    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                      target_modules=targets, fan_in_fan_out=conv1d, task_type="CAUSAL_LM")
    return get_peft_model(model, lora).base_model.model  # the adapters live in `model`


def merge_lora(model, copy_first: bool = True):
    """A plain transformers model for saving: each LoRA layer folded into its weight,
    W <- W + (alpha / r) B A, and replaced by the layer it wrapped. Without adapters the
    model itself. copy_first=False merges in place (the end of a run)."""
    from peft.tuners.lora import LoraLayer

    if not any(isinstance(m, LoraLayer) for m in model.modules()):
        return model
    if copy_first:
        model = copy.deepcopy(model)
    for name, layer in [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]:
        layer.merge()
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, layer.get_base_layer())
    model.__dict__.pop("peft_config", None)  # peft's note on the model: not a peft model now
    return model


def enable_checkpointing(model) -> None:
    """Gradient checkpointing: keep each transformer block's input only and recompute the
    block in the backward pass (use_reentrant=False: works with frozen embeddings, LoRA)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    enable = (getattr(model, "activation_checkpointing_enable", None)
              or model.gradient_checkpointing_enable)  # transformers 5 / 4.x
    enable({"use_reentrant": False})
    # transformers checkpoints a block only in training mode, and the trainer keeps every
    # model in eval mode (dropout off): flag the blocks alone, their dropouts stay off.
    # Without gradients (the rollout) a block runs as is, KV cache included; the update's
    # forwards ask for no cache (rollout.policy_forward, critic_forward).
    for m in model.modules():
        if isinstance(m, GradientCheckpointingLayer):
            m.training = True


def make_critic(config, policy, tokenizer, reward: RewardFunction):
    """PPO-max: a copy of the reward model when it reads the policy's tokens; otherwise
    the policy's body with a fresh scalar head."""
    if config.critic_init == "reward":
        rm, rm_tok = reward.model, reward.tokenizer
        if rm is not None and rm_tok is not None:
            if rm_tok.get_vocab() != tokenizer.get_vocab():
                sizes = (f"{len(rm_tok)} tokens vs the policy's {len(tokenizer)}"
                         if len(rm_tok) != len(tokenizer) else "same size, other token ids")
                raise ValueError(
                    "critic_init='reward' starts the critic from the reward model, but the "
                    f"reward model's tokenizer differs from the policy's ({sizes}): the "
                    "critic must read the policy's tokens. Use --critic-init policy "
                    "(critic_init='policy'), or train the reward model from the policy's "
                    "base (moss-lab train-rm --base <the policy's folder>)")
            critic = copy.deepcopy(rm)
            for p in critic.parameters():
                p.requires_grad_(True)
            return critic
        warnings.warn("critic_init='reward' needs a reward model with the policy's tokenizer; "
                      "initialising the critic from the policy instead")
    elif config.critic_init != "policy":
        raise ValueError(f"critic_init must be 'reward' or 'policy', not {config.critic_init!r}")
    cfg = copy.deepcopy(policy.config)
    cfg.num_labels = 1
    critic = AutoModelForSequenceClassification.from_config(cfg)
    body = getattr(critic, critic.base_model_prefix)
    body.load_state_dict(getattr(policy, policy.base_model_prefix).state_dict())
    return critic


def prompt_source(config) -> Callable[[int], list[str]]:
    """draw(k) -> the k-th batch of config.batch_size prompts (deterministic in config.seed
    and k)."""
    batch_size, seed = config.batch_size, config.seed
    if config.prompts == "toy":
        return lambda k: toyworld.sample_prompts(batch_size, seed=seed * 1_000_003 + k)
    prompts = [text for _, text in read_prompts(config.prompts)]

    def draw(k: int) -> list[str]:
        epoch, start = divmod(k * batch_size, len(prompts))
        out = []
        while len(out) < batch_size:  # an epoch-seeded shuffle, cycled
            order = list(range(len(prompts)))
            random.Random(seed * 7919 + epoch).shuffle(order)
            out += [prompts[i] for i in order[start:start + batch_size - len(out)]]
            epoch, start = epoch + 1, 0
        return out

    return draw


# ---------------------------------------------------------------------------------------
# Prompts files
# ---------------------------------------------------------------------------------------
def read_prompts(path: str | Path, note: bool = True) -> list[tuple[int, str]]:
    """(line number, prompt) for every prompt of a prompts file.

        .txt     one prompt per line, used as written (end it the way the reward model's
                 data does, e.g. "Human: ... Assistant:")
        .jsonl   {"prompt": "..."} per line, or Anthropic HH-RLHF lines ({"chosen",
                 "rejected"}): the conversation up to its last "\n\nAssistant:"

    Blank lines are skipped and counted in a note; a line that cannot be used is a
    ValueError naming the file and the line.
    """
    from ..preferences import PreferenceError, parse_hh

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"prompts file {path} not found (give 'toy', a .txt or a .jsonl file)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"prompts file {path} is not UTF-8 text ({err.reason}); save it as "
                         "UTF-8") from None
    prompts, blank = [], 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            blank += 1
            continue
        if path.suffix != ".jsonl":
            prompts.append((number, line))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {number}: bad JSON ({err.msg} at column "
                             f"{err.colno})") from None
        if isinstance(obj, dict) and isinstance(obj.get("prompt"), str) and obj["prompt"].strip():
            prompts.append((number, obj["prompt"]))
        elif isinstance(obj, dict) and "chosen" in obj and "rejected" in obj:
            try:
                prompts.append((number, parse_hh(obj["chosen"], obj["rejected"]).prompt))
            except PreferenceError as err:
                raise ValueError(f"{path}, line {number}: {err}") from None
        else:
            raise ValueError(f"{path}, line {number}: a .jsonl prompts file needs a non-empty "
                             "\"prompt\" text per line (or HH-RLHF \"chosen\"/\"rejected\")")
    if not prompts:
        raise ValueError(f"no prompts in {path}: write one prompt per line (.txt) or "
                         "{\"prompt\": ...} per line (.jsonl)")
    if blank and note:
        warnings.warn(f"note: {path}: skipped {blank} blank line(s); {len(prompts)} prompts",
                      stacklevel=2)
    return prompts


def context_length(model) -> int | None:
    """The most positions the model can attend to (None when its config does not say)."""
    for key in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(model.config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_prompt_lengths(config, tokenizer, model) -> None:
    """Refuse a prompts file whose prompts leave no room for max_new_tokens in the model's
    context, naming the lines (a prompt cut silently would be a different question)."""
    if config.prompts == "toy":
        return
    context = context_length(model)
    if context is None:
        return
    prompts = read_prompts(config.prompts, note=False)
    limit = context - config.max_new_tokens
    lengths = [len(ids) for ids in tokenizer([text for _, text in prompts]).input_ids]
    long = [(number, n) for (number, _), n in zip(prompts, lengths) if n > limit]
    if long:
        shown = ", ".join(f"line {number} ({n} tokens)" for number, n in long[:5])
        more = f" and {len(long) - 5} more" if len(long) > 5 else ""
        raise ValueError(
            f"{config.prompts}: {len(long)} prompt(s) too long for the model: {shown}{more}. "
            f"The model reads {context} positions and max_new_tokens is "
            f"{config.max_new_tokens}, so a prompt may have at most {max(limit, 0)} tokens: "
            "shorten or remove these lines, or lower --max-new-tokens")


def check_new_tokens_fit(config, tokenizer, model) -> None:
    """Toy prompts: max_new_tokens must fit in the policy's context window after the
    longest prompt of the first batch (moss_lab.configs.check_new_tokens): a ValueError
    naming the field before anything runs, not an IndexError mid-rollout. (A prompts file
    is checked line by line by check_prompt_lengths.)"""
    from ..configs import check_new_tokens

    if config.prompts != "toy" or context_length(model) is None:
        return
    prompts = prompt_source(config)(0)
    longest = max(len(ids) for ids in tokenizer(prompts).input_ids)
    check_new_tokens(model, longest, config.max_new_tokens)
