"""How much accelerator memory a PPO run needs, estimated before it starts.

`moss-lab ppo` prints it and the app's PPO tab shows it under the device choice. Sizes
come from the models' configs (no weights are loaded: the parameters are counted on
PyTorch's "meta" device). The formula, in bytes (P, C, R: parameters of policy, critic
and reward model; T: trained policy parameters, P or the LoRA adapters' L):

    weights      4P (+ 4L adapters) + 4C          policy and critic: fp32 master weights
                 + w P + w R                      frozen reference and reward model,
                                                  w = 2 in bf16, 4 in fp32
    gradients    4T + 4C
    adam         8T + 8C                          two fp32 moments per trained parameter
    autocast     2T + 2C (bf16 only)              the bf16 copies autocast keeps of the
                                                  trained weights during a forward
    rollout      max(KV cache, scoring logits)    the whole batch B at once, no gradient
                 KV cache  2 layers B S d_kv a    keys and values, a = 2 (bf16) or 4 bytes
                 logits    B (N + 1) V (a + 16)   the logits and four fp32 working copies
                                                  (float, / temperature, softmax, log-softmax)
    update       one minibatch m with gradients, policy and critic:
                 activations  m S layers u a      u = 10 h + 4 I + 2 heads S values kept per
                                                  token and block: projections and norms
                                                  (~10 h), the MLP (I its width: fc and GELU
                                                  outputs, or SwiGLU's gate, up, act, product),
                                                  the attention probabilities (eager attention;
                                                  flash attention keeps none: an overestimate)
                   checkpointed  m S (h layers + u) a    each block's input, one block redone
                 logits    m (N + 1) V (a + 12)   the logits, their float copy, the log-softmax
                                                  kept for the backward, and its gradient

    total = weights + gradients + adam + autocast + max(rollout, update)

S = prompt + N new tokens, h the hidden size, d_kv = h x kv_heads / heads, V the
vocabulary. Not counted: PyTorch's CUDA context (~0.5 GiB) and allocator fragmentation:
leave ~10-20% of the GPU free. Checked on the CPU (tests/test_gpu_options.py): weights,
gradients and Adam states exactly; the tensors autograd keeps in a minibatch's forward
were 0.7x (tiny Llama) and 0.84x (tiny GPT-2) of the update term, eager attention, fp32.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GIB = 2**30
TOY_PROMPT_TOKENS = 16       # the toy world's longest prompts
CHARS_PER_TOKEN = 3          # a cautious guess for English text in a BPE vocabulary


@dataclass
class ModelShape:
    """What the estimate needs to know about a model."""
    params: int
    hidden: int = 0
    layers: int = 0
    vocab: int = 0
    kv_dim: int = 0          # hidden x kv_heads / heads (grouped-query attention: smaller)
    heads: int = 1
    intermediate: int = 0    # the MLP's width (GPT-2: 4 x hidden)
    lora_params: int = 0     # parameters of the LoRA adapters (0: no LoRA)


def estimate_ppo_memory(config, policy: ModelShape, critic: ModelShape,
                        reward: ModelShape | None, prompt_tokens: int,
                        dtype_bytes: int | None = None) -> dict:
    """The parts of the formula above and their total, in GiB (a dict of floats).

    config: a PPOConfig (batch_size, minibatch_size, max_new_tokens, lora_rank,
    gradient_checkpointing, precision); reward None: no reward model (the gold oracle).
    dtype_bytes: 2 (bf16) or 4 (fp32); None: from config.precision, "auto" counted as bf16
    (what it is on a GPU that has it).
    """
    a = dtype_bytes or (4 if config.precision == "fp32" else 2)
    P, C, R = policy.params, critic.params, reward.params if reward else 0
    L = policy.lora_params if config.lora_rank else 0
    T = L if config.lora_rank else P
    B, N = config.batch_size, config.max_new_tokens
    m = min(config.minibatch_size, B)
    S = prompt_tokens + N

    def activations(shape: ModelShape) -> int:
        u = 10 * shape.hidden + 4 * (shape.intermediate or 4 * shape.hidden) + 2 * shape.heads * S
        if config.gradient_checkpointing:
            return m * S * (shape.hidden * shape.layers + u) * a
        return m * S * shape.layers * u * a

    kv_cache = 2 * policy.layers * B * S * (policy.kv_dim or policy.hidden) * a
    rollout_logits = B * (N + 1) * policy.vocab * (a + 16)
    parts = {
        "weights": 4 * P + 4 * L + 4 * C + a * P + a * R,
        "gradients": 4 * T + 4 * C,
        "adam": 8 * T + 8 * C,
        "autocast": (2 * T + 2 * C) if a == 2 else 0,
        "rollout": max(kv_cache, rollout_logits),
        "update": activations(policy) + activations(critic) + m * (N + 1) * policy.vocab * (a + 12),
    }
    out = {k: v / GIB for k, v in parts.items()}
    out["kv_cache"], out["rollout_logits"] = kv_cache / GIB, rollout_logits / GIB
    out["total"] = (sum(parts[k] for k in ("weights", "gradients", "adam", "autocast"))
                    + max(parts["rollout"], parts["update"])) / GIB
    return out


# ---------------------------------------------------------------------------------------
# Shapes from configs, without loading weights
# ---------------------------------------------------------------------------------------
def shape_of(model_config, kind: str = "causal", lora_rank: int = 0,
             lora_targets: str = "auto") -> ModelShape:
    """A ModelShape from a transformers config: parameters counted on the meta device.
    kind: "causal" (a policy) or "reward" (a sequence classifier with one output)."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cfg = copy.deepcopy(model_config)
    if kind == "reward":
        cfg.num_labels = 1
    with torch.device("meta"):
        model = (AutoModelForSequenceClassification if kind == "reward"
                 else AutoModelForCausalLM).from_config(cfg)
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    hidden = _first(text, "hidden_size", "n_embd", "d_model")
    heads = _first(text, "num_attention_heads", "n_head") or 1
    kv_heads = _first(text, "num_key_value_heads") or heads
    lora = lora_params(model, lora_rank, lora_targets) if lora_rank and kind == "causal" else 0
    return ModelShape(params=sum(p.numel() for p in model.parameters()), hidden=hidden,
                      layers=_first(text, "num_hidden_layers", "n_layer"),
                      vocab=_first(text, "vocab_size"), kv_dim=hidden * kv_heads // heads,
                      heads=heads, intermediate=_first(text, "intermediate_size", "n_inner"),
                      lora_params=lora)


def lora_params(model, rank: int, targets: str = "auto") -> int:
    """Parameters LoRA adds: r (d_in + d_out) for each target layer (B is d_out x r, A is
    r x d_in); the targets as the trainer picks them (moss_lab.ppo.setup)."""
    from .ppo.setup import lora_target_names

    names = set(lora_target_names(model, targets))
    return sum(rank * sum(m.weight.shape) for n, m in model.named_modules()
               if n.rpartition(".")[2] in names and hasattr(m, "weight"))


def _first(cfg, *keys) -> int:
    for key in keys:
        value = getattr(cfg, key, None)
        if isinstance(value, int):
            return value
    return 0


def model_config_of(name: str):
    """The transformers config of a policy or reward model name, without its weights: a
    toy name (its cached folder, else the config it would be built with), a folder (a
    reward run's folder reads its model/), or a hub id (the local cache only when offline)."""
    from transformers import AutoConfig

    from .models import resolve_toy, toy_model_dir

    size = resolve_toy(str(name))
    if size is not None:
        folder = toy_model_dir(size)
        if (folder / "config.json").is_file():
            return AutoConfig.from_pretrained(folder)
        from .pretrain import make_model
        from .tokenizer import build_toy_tokenizer
        return make_model(build_toy_tokenizer(), size).config
    folder = Path(str(name)).expanduser()
    if (folder / "model" / "config.json").is_file():  # a reward run's folder
        folder = folder / "model"
    return AutoConfig.from_pretrained(folder if folder.is_dir() else str(name))


def prompt_tokens_of(prompts: str) -> int:
    """A guess of the longest prompt in tokens: the toy world's, or a prompts file's
    longest line in characters / CHARS_PER_TOKEN."""
    if prompts == "toy" or not Path(prompts).is_file():
        return TOY_PROMPT_TOKENS
    lines = Path(prompts).read_text(encoding="utf-8", errors="replace").splitlines()
    return max([len(line) // CHARS_PER_TOKEN + 1 for line in lines] + [TOY_PROMPT_TOKENS])


def estimate_for_config(config, device: str | None = None) -> dict:
    """estimate_ppo_memory for a PPOConfig's model names, read from their configs; on a
    device, "auto" precision counts as what it resolves to there. Raises what loading a
    config raises (OSError, ValueError) when a name cannot be read."""
    from .device import compute_dtype, pick_device

    policy_cfg = model_config_of(config.policy)
    policy = shape_of(policy_cfg, "causal", config.lora_rank, config.lora_targets)
    reward = None
    if config.reward != "gold":
        reward_cfg = policy_cfg if config.reward == "toy" else model_config_of(config.reward)
        reward = shape_of(reward_cfg, "reward")
    critic = (reward if config.critic_init == "reward" and reward
              else shape_of(policy_cfg, "reward"))  # the policy's body with a scalar head
    dtype_bytes = None
    if device is not None:
        import torch
        bf16 = compute_dtype(config.precision, pick_device(device)) == torch.bfloat16
        dtype_bytes = 2 if bf16 else 4
    est = estimate_ppo_memory(config, policy, critic, reward, prompt_tokens_of(config.prompts),
                              dtype_bytes)
    est["bf16"] = (dtype_bytes or (4 if config.precision == "fp32" else 2)) == 2
    est["policy_params"], est["lora_params"] = policy.params, policy.lora_params
    return est


def describe(est: dict, device_gib: float | None = None) -> str:
    """One line for people: the total, then where it goes."""
    parts = ", ".join(f"{k} {est[k]:.2f}" for k in
                      ("weights", "gradients", "adam", "autocast", "rollout", "update") if est[k])
    mode = ("bf16" if est["bf16"] else "fp32") + (
        f", LoRA {est['lora_params'] / 1e6:.2f}M trained" if est["lora_params"] else "")
    fits = ""
    if device_gib:
        fits = (f" of {device_gib:.0f} GiB: fits" if est["total"] < 0.85 * device_gib else
                f" of {device_gib:.0f} GiB: TOO MUCH (lower minibatch/batch size or "
                "max_new_tokens, or turn on gradient_checkpointing / lora_rank)")
    return (f"memory estimate: ~{est['total']:.2f} GiB{fits} "
            f"({parts} GiB; policy {est['policy_params'] / 1e6:.1f}M params, {mode})")


class NotEnoughMemory(RuntimeError):
    """A run did not fit in its device's memory; the message says what to change."""


@contextlib.contextmanager
def out_of_memory_says(message: Callable[[BaseException], str]):
    """An out-of-memory error (CUDA, MPS or CPU: moss_lab.device.is_out_of_memory) inside
    becomes NotEnoughMemory(message(err)); any other error passes unchanged."""
    from .device import is_out_of_memory

    try:
        yield
    except (RuntimeError, MemoryError) as err:  # torch's OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(err):
            raise
        raise NotEnoughMemory(message(err)) from err


def out_of_memory_at_load(config, err: BaseException) -> str:
    """The message of a run whose models did not fit on the device while loading: the
    estimate for the run and what to change."""
    from .device import out_of_memory_kind

    try:
        estimate = describe(estimate_for_config(config, config.device))
    except Exception:  # noqa: BLE001 (a config that cannot be read: no figure, same advice)
        estimate = "no estimate (a model's config could not be read)"
    models = "policy, reference, critic" + ("" if config.reward == "gold" else ", reward model")
    fixes = ["a smaller policy or reward model", f"lora_rank (now {config.lora_rank}, e.g. 16)"]
    if config.precision == "fp32":
        fixes.insert(0, "precision bf16")
    return (f"{out_of_memory_kind(err) or 'the device'} out of memory while loading the models "
            f"({models}) onto {config.device}, before the first iteration; {estimate}. "
            f"Try {', '.join(fixes)}, or a device with more memory")


def out_of_memory_reason(config, doing: str, err: BaseException) -> str:
    """The reason a run that ran out of memory gives: where, and what to change."""
    from .device import out_of_memory_kind

    kind = out_of_memory_kind(err) or "the device"
    if doing.startswith("the rollout"):
        fix = (f"lower batch_size (now {config.batch_size}) or max_new_tokens (now "
               f"{config.max_new_tokens})")
    else:
        fix = (f"lower minibatch_size (now {config.minibatch_size}) or max_new_tokens (now "
               f"{config.max_new_tokens}), turn on gradient_checkpointing, or set lora_rank "
               "(e.g. 16)")
    if config.precision == "fp32":
        fix += ", or use precision bf16"
    return (f"{kind} out of memory at {doing}: {fix}. The run stopped there; the run folder "
            "keeps the finished iterations (no final policy is saved). `moss-lab ppo` prints "
            "a memory estimate before it starts")
