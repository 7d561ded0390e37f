"""Step 2 of the pipeline: a Bradley-Terry reward model (Lab 02 and Lab 03).

The reward model is the base LM with a scalar head (AutoModelForSequenceClassification,
num_labels=1), initialised from the base model as MOSS does. It reads prompt + response +
<eos> and outputs r at the last token: moss_lab.scoring, the same format PPO uses.

Training maximises the Bradley-Terry likelihood P(chosen > rejected) = sigma(r_c - r_r):

    loss = -(1 - eps) log sigma(d) - eps log sigma(-d),   d = r_c - r_r - m

with the remedies of "Secrets of RLHF, Part II" for noisy labels as options:
    label_smoothing  eps > 0: never fully trust a label (ties use eps = 0.5)
    margin           m: a fixed margin, the record's own `margin` field (like trl),
                     and/or an adaptive margin = adaptive_margin * preference strength
    flip_fraction    swap chosen/rejected of the pairs with the lowest preference strength
    smooth_fraction  smooth only the pairs with the strength closest to 0 (ambiguous)
    contrastive_coef + a SimCSE-style InfoNCE term on the representations (Lab 11)
    lm_coef          + lm_coef * next-token loss on prompt + chosen (Part I)
    center_coef      + center_coef * mean((r_c + r_r)^2), trl's `center_rewards_coefficient`

By default the token and position embeddings of the base model stay frozen: with a few
thousand noisy pairs, fine-tuning them overfits (toy world, 5 epochs: 0.79 vs 0.76 gold
agreement), and the step is cheaper.

Preference strength: Part II estimates it with an ensemble of reward models; here it is
the gap r_c - r_r of the model itself, measured once on every training pair when epoch
`remedy_epoch` starts (by then it has learned the easy, mostly correct majority; a pair it
strongly disagrees with is probably mislabelled). Simple, and one model is all a laptop
can afford. Lab 11 measures it with an ensemble (moss_lab.preference_strength) and passes
it in: train_reward_model(..., strength=s).

Metrics written per step to metrics.jsonl (and sent to `on_metrics`):
    step, epoch, lr, loss, train/accuracy, train/margin, reward/mean, reward/std, time/step_s
and after every epoch on the held-out pairs:
    eval/loss, eval/acc_labels, eval/acc_gold, eval/margin, eval/reward_mean, eval/reward_std
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, ClassVar, Literal

import torch
import torch.nn.functional as F

from . import distributed, files, preferences
from .configs import Bound, between, check_bounds
from .device import out_of_memory_kind
from .memory import out_of_memory_says
from .preferences import Preference
from .run_folder import RunFolder
from .scoring import reward_inputs, score

MODEL_SUBDIR = "model"  # a run folder keeps the saved reward model here


# ---------------------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------------------
def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin=None,
                       label_smoothing=0.0) -> torch.Tensor:
    """Mean Bradley-Terry loss over pairs (Lab 02).

        d    = r_c - r_r - margin
        loss = mean( -(1 - eps) log sigma(d) - eps log sigma(-d) )

    margin and label_smoothing (eps) are numbers or per-pair tensors. With margin=None
    and eps=0 this is exactly trl's RewardTrainer loss, -log sigma(r_c - r_r).
    """
    d = r_chosen - r_rejected
    if margin is not None:
        d = d - margin
    loss = -F.logsigmoid(d)
    if not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0):
        loss = (1 - label_smoothing) * loss - label_smoothing * F.logsigmoid(-d)
    return loss.mean()


# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------
@dataclass
class RewardConfig:
    """Hyperparameters of reward-model training.

    The defaults are the quick ones that Lab 03, Lab 11 and the app's Reward tab start
    from: the 2-layer toy base on 4k toy pairs, ~0.78-0.82 held-out agreement with gold in
    ~51 s on one CPU core, pair generation included. For this shallow model passes over
    the data matter more than fresh pairs (4k x 5 epochs 0.79, 8k x 2 0.77, 12k x 1 0.72),
    and it plateaus near 0.82 even on perfect labels. The toy reward model that PPO, the
    labs and the app use by default (moss_lab.ppo.toy.TOY_RM_CONFIG, benchmarks/
    reward_model.py's default setup) starts from a deeper base instead: toy-xs-deep, 9k
    pairs, 3 epochs, lr 2e-3, embeddings trained, lm_coef 0.5, eager attention, 2
    threads: 0.84-0.88 in ~55 s.
    """

    base: str = "toy"
    """The base LM the reward model starts from: "toy", "toy-xs-deep", "toy-s", a folder
    saved with save_pretrained, or a Hugging Face hub id."""
    epochs: int = 7
    """Passes over the training pairs."""
    batch_size: int = 64
    """Pairs per step (each step scores 2 * batch_size texts)."""
    lr: float = 2e-3
    """Peak AdamW learning rate (1e-3: 0.777 gold agreement, 3e-3: 0.716; xs, 5 epochs,
    frozen embeddings)."""
    warmup_steps: int = 20
    """Steps of linear warmup before the cosine decay, at most a fifth of the run's steps
    (a run of 7 steps warms up for 1, so the learning rate reaches lr)."""
    min_lr_ratio: float = 0.1
    """The cosine decay ends at this fraction of lr."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm."""
    eval_fraction: float = 0.1
    """Share of the pairs held out for evaluation when no eval pairs are given."""
    freeze_embeddings: bool = True
    """Keep the base model's token and position embeddings: with a few thousand noisy pairs
    they overfit (0.795 vs 0.76 gold agreement)."""
    bucket_by_length: bool = True
    """Batches of similar length: less padding, faster on a CPU, and it learns better too
    (toy, 7 epochs, seed 0: 0.82 vs 0.75 gold agreement)."""
    eval_every_epoch: bool = True
    """Evaluate the held-out pairs after every epoch (else at the end only)."""
    seed: int = 0
    """Seeds the head's initialisation, the train/held-out split and the batch order."""
    threads: int | None = None
    """CPU threads; None: 1 for tiny models."""
    device: str | None = None
    """"cpu", "cuda", "mps", or None for the best available."""
    attn_implementation: Literal["eager", "sdpa"] | None = None
    """"eager": toy models train ~20% faster on a CPU than with SDPA's masked path
    (toy-xs-deep: 0.085 vs 0.10-0.12 s a step), scores equal to 3e-7. None: the model's
    default (SDPA; flash attention on a GPU)."""

    # --- remedies for noisy preferences (Secrets of RLHF, Part II) ---
    label_smoothing: float = 0.0
    """eps > 0: never fully trust a label; the loss mixes in eps of the reversed order."""
    margin: float = 0.0
    """A fixed margin m: the loss asks for r_chosen - r_rejected > m."""
    margin_from_data: bool = True
    """Add each record's own `margin` field to m when it has one (like trl)."""
    adaptive_margin: float = 0.0
    """m += adaptive_margin * max(preference strength, 0)."""
    flip_fraction: float = 0.0
    """Swap chosen and rejected of this fraction of the pairs with the weakest preference
    strength (probably mislabelled)."""
    remedy_epoch: int = 1
    """The epoch (0-based) at which preference strength is measured, for the remedies that
    need it (flip_fraction, smooth_fraction, adaptive_margin); a strength given to
    train_reward_model (e.g. an ensemble's, moss_lab.preference_strength) is used from
    the first epoch instead."""
    smooth_fraction: float = 0.0
    """0: label_smoothing applies to every pair. > 0: only to this fraction of the pairs
    with the preference strength closest to 0 (ambiguous, Part II), once it is measured."""
    lm_coef: float = 0.0
    """Weight of a next-token loss on prompt + chosen (Part I); 0.5 added ~0.015 gold
    agreement to the deeper toy model (3 seeds)."""
    center_coef: float = 0.0
    """Weight of mean((r_c + r_r)^2), keeping rewards centred on 0; trl's
    center_rewards_coefficient."""
    contrastive_coef: float = 0.0
    """Weight of a SimCSE-style InfoNCE term on the reward model's representations (Part
    II): two dropout views of each pair's h_chosen - h_rejected, the other pairs of the
    batch as negatives (moss_lab.preference_strength.contrastive_loss)."""
    contrastive_temperature: float = 0.1
    """The InfoNCE temperature t of that term."""

    # The range of every numeric field (moss_lab.configs): __post_init__ checks it for the
    # library, the CLI and the app; the app's forms take their minimum/maximum from it.
    BOUNDS: ClassVar[dict[str, Bound]] = {
        "epochs": between(1, 1000), "batch_size": between(1, 4096),
        "lr": between(0, 1, lo_open=True), "warmup_steps": between(0, 100_000),
        "min_lr_ratio": between(0, 1), "weight_decay": between(0, 10),
        "max_grad_norm": between(0, 1e6, lo_open=True), "eval_fraction": between(0, 0.9),
        "seed": between(0, 2**32 - 1), "threads": between(1, 256),
        "label_smoothing": between(0, 0.5), "margin": between(-100, 100),
        "adaptive_margin": between(0, 100), "flip_fraction": between(0, 0.5),
        "remedy_epoch": between(0, 1000), "lm_coef": between(0, 100),
        "center_coef": between(0, 100), "smooth_fraction": between(0, 1),
        "contrastive_coef": between(0, 100),
        "contrastive_temperature": between(0, 10, lo_open=True),
    }

    def __post_init__(self) -> None:
        """Refuse settings that cannot work, with a message naming the field (CLI and app)."""
        errors = check_bounds(self)
        if errors:
            raise ValueError("invalid reward-model config: " + "; ".join(errors))


# ---------------------------------------------------------------------------------------
# Loading, saving, scoring
# ---------------------------------------------------------------------------------------
def init_reward_model(base: str = "toy", seed: int = 0, attn_implementation: str | None = None):
    """A fresh reward model from a base LM: (model, tokenizer); only the head is new.

    attn_implementation: e.g. "eager" (see RewardConfig); None keeps the model's default.

    The tokenizer pads on the left with a pad token distinct from <eos> (the model reads
    the last non-pad token).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from .models import build_toy_model, check_model_folder, resolve_toy

    size = resolve_toy(base)
    if size is not None:
        folder = str(build_toy_model(size))
    elif Path(base).expanduser().is_dir():
        folder = str(check_model_folder(base, "base model"))
    else:
        folder = base  # a hub id
    config = AutoConfig.from_pretrained(folder, num_labels=1)
    if getattr(config, "activation_function", None) == "gelu_new":
        # the same tanh-approximated GELU, computed by one fused kernel instead of five
        # Python-level ops: reward-model steps ~15% faster on a CPU, outputs equal to 1e-6
        config.activation_function = "gelu_pytorch_tanh"
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    torch.manual_seed(seed)  # the head is random: seed it
    model = AutoModelForSequenceClassification.from_pretrained(folder, config=config, **extra)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return _fix_padding(model, tokenizer, repr(base))


def _fix_padding(model, tokenizer, name: str = "the reward model"):
    from .models import ensure_pad_token

    return ensure_pad_token(model, tokenizer, name)


def load_reward_model(folder: str | Path, device: str | None = None):
    """Load a saved reward model: a run folder (uses its model/ subfolder) or a model folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .device import pick_device
    from .models import check_model_folder

    folder = Path(folder).expanduser()
    if (folder / MODEL_SUBDIR / "config.json").is_file():
        folder = folder / MODEL_SUBDIR
    check_model_folder(folder, "reward model")
    kinds = (files.read_json(folder / "config.json") or {}).get("architectures") or []
    if kinds and not any(k.endswith("ForSequenceClassification") for k in kinds):
        raise ValueError(f"{folder} holds a {kinds[0]}, not a reward model (it would score "
                         "with an untrained head): train one from it with "
                         f"`moss-lab train-rm --base {folder}` and give its model/ folder")
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model, tokenizer = _fix_padding(model, tokenizer, str(folder))
    return model.to(pick_device(device)).eval(), tokenizer


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------
def pair_scores(model, tokenizer, pairs: list[Preference]) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen, r_rejected), each of shape (n,), no gradient."""
    was_training = model.training
    model.eval()
    prompts = [p.prompt for p in pairs]
    r_c = score(model, tokenizer, prompts, [p.chosen for p in pairs])
    r_r = score(model, tokenizer, prompts, [p.rejected for p in pairs])
    model.train(was_training)
    return r_c, r_r


def evaluate_reward_model(model, tokenizer, pairs: list[Preference]) -> dict:
    """How well the reward model orders pairs.

    acc_labels  fraction of labelled pairs (ties skipped) with r_c > r_r
    acc_gold    fraction of toy-world pairs where the RM orders the two responses as the
                gold score does (gold ties skipped); None without toy-world pairs
    loss        Bradley-Terry loss on the labelled pairs
    margin      mean r_c - r_r;  reward_mean / reward_std over all 2n responses
    """
    if not pairs:
        raise ValueError("no pairs to evaluate")
    r_c, r_r = pair_scores(model, tokenizer, pairs)
    labelled = torch.tensor([not p.tie for p in pairs])
    diff = r_c - r_r
    out = {"n": len(pairs)}
    if labelled.any():
        out["acc_labels"] = (diff[labelled] > 0).float().mean().item()
        out["loss"] = bradley_terry_loss(r_c[labelled], r_r[labelled]).item()
    else:
        out["acc_labels"], out["loss"] = None, None
    agree, n_gold = preferences.gold_judged(pairs, judged=diff.tolist())
    out["acc_gold"], out["n_gold"] = (agree / n_gold if n_gold else None), n_gold
    both = torch.cat([r_c, r_r])
    out["margin"] = diff.mean().item()
    out["reward_mean"] = both.mean().item()
    out["reward_std"] = both.std().item() if len(both) > 1 else 0.0
    return out


# ---------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------
def split_sizes(n: int, eval_fraction: float) -> tuple[int, int]:
    """(training pairs, held-out pairs) that split_pairs makes of n pairs."""
    n_eval = int(round(n * eval_fraction))
    return n - n_eval, n_eval


def split_pairs(pairs: list[Preference], eval_fraction: float, seed: int = 0):
    """Shuffle and split into (train, held-out)."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_eval = split_sizes(len(pairs), eval_fraction)[1]
    return [pairs[i] for i in order[n_eval:]], [pairs[i] for i in order[:n_eval]]


def _batches(pairs: list[Preference], batch_size: int, bucket: bool, rng: random.Random):
    """Index lists for one epoch. Bucketing sorts shuffled pairs by length within chunks
    of 32 batches, so each batch holds similar lengths, then shuffles the batch order."""
    order = list(range(len(pairs)))
    rng.shuffle(order)
    if bucket:
        def length(i):
            p = pairs[i]
            return len(p.prompt.split()) + max(len(p.chosen.split()), len(p.rejected.split()))
        chunk = batch_size * 32
        order = [i for s in range(0, len(order), chunk)
                 for i in sorted(order[s:s + chunk], key=length)]
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def _lm_loss(model, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
    """Next-token cross-entropy of the reward model's body, read through the tied input
    embeddings (the base LM's own head, since GPT-2 ties them). `hidden` is the body's
    last hidden state for `batch`, already computed for the reward."""
    _check_lm_term(model)
    logits = hidden @ model.get_input_embeddings().weight.T
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())


def _check_lm_term(model) -> None:
    if not getattr(model.config, "tie_word_embeddings", False):
        raise ValueError(
            f"lm_coef > 0 needs a base model whose LM head is tied to its input embeddings "
            f"(GPT-2 and the toy models); this {type(model).__name__} has a separate lm_head, "
            "which a reward model does not keep: use lm_coef 0 (--lm-coef 0)")


def pair_loss(model, tokenizer, pairs: list[Preference], config: RewardConfig,
              margins=None, smoothing=None, device=None) -> tuple[torch.Tensor, dict]:
    """The training loss on a batch of pairs and its batch statistics.

    Chosen and rejected texts go through the model in one forward pass (like trl).
    `margins` / `smoothing` are per-pair tensors (None: from the config and the records).
    """
    n = len(pairs)
    batch = reward_inputs(tokenizer, [p.prompt for p in pairs] * 2,
                          [p.chosen for p in pairs] + [p.rejected for p in pairs], device)
    # one pass serves every term: the LM and contrastive terms read the same last hidden state
    out = model(**batch, output_hidden_states=bool(config.lm_coef or config.contrastive_coef))
    rewards = out.logits[:, 0]
    r_c, r_r = rewards[:n], rewards[n:]
    if margins is None:
        margins = pair_margins(pairs, config)
    if smoothing is None:
        smoothing = pair_smoothing(pairs, config)
    loss = bradley_terry_loss(r_c, r_r, margins.to(rewards), smoothing.to(rewards))
    if config.center_coef:
        loss = loss + config.center_coef * ((r_c + r_r) ** 2).mean()
    if config.lm_coef:
        chosen = {k: v[:n] for k, v in batch.items()}
        loss = loss + config.lm_coef * _lm_loss(model, out.hidden_states[-1][:n], chosen)
    if config.contrastive_coef:
        from .preference_strength import contrastive_loss

        # what the head reads: the hidden state of each text's last token (left padding)
        h = out.hidden_states[-1][:, -1]
        loss = loss + config.contrastive_coef * contrastive_loss(
            h[:n], h[n:], config.contrastive_temperature)
    with torch.no_grad():
        labelled = ~torch.tensor([p.tie for p in pairs], device=rewards.device)
        diff = (r_c - r_r)[labelled]
        stats = {"loss": loss.item(),
                 "train/accuracy": (diff > 0).float().mean().item() if len(diff) else float("nan"),
                 "train/margin": diff.mean().item() if len(diff) else float("nan"),
                 "reward/mean": rewards.mean().item(), "reward/std": rewards.std().item()}
    return loss, stats


def pair_margins(pairs: list[Preference], config: RewardConfig, strength=None) -> torch.Tensor:
    """m_i = margin + record margin (if margin_from_data) + adaptive_margin * max(strength_i, 0)."""
    m = torch.full((len(pairs),), float(config.margin))
    if config.margin_from_data:
        m += torch.tensor([p.margin or 0.0 for p in pairs])
    if strength is not None and config.adaptive_margin:
        m += config.adaptive_margin * strength.clamp(min=0)
    return m


def pair_smoothing(pairs: list[Preference], config: RewardConfig, strength=None) -> torch.Tensor:
    """eps_i = label_smoothing, or 0.5 for a tie (a tie says both orders are equally likely).

    With smooth_fraction > 0, label_smoothing goes only to that fraction of the labelled
    pairs with the smallest |strength_i| (the ambiguous ones), and to none before the
    strength is known."""
    eps = [0.5 if p.tie else config.label_smoothing for p in pairs]
    if config.smooth_fraction > 0:
        labelled = [i for i, p in enumerate(pairs) if not p.tie]
        k = int(len(labelled) * config.smooth_fraction)
        ambiguous = set() if strength is None else \
            set(sorted(labelled, key=lambda i: abs(strength[i].item()))[:k])
        eps = [0.5 if p.tie else config.label_smoothing if i in ambiguous else 0.0
               for i, p in enumerate(pairs)]
    return torch.tensor(eps)


def flip_weakest(pairs: list[Preference], strength: torch.Tensor, fraction: float):
    """Swap chosen/rejected of the `fraction` of labelled pairs with the lowest strength.

    Returns (new pairs, indices flipped). Ties are never flipped."""
    candidates = [i for i, p in enumerate(pairs) if not p.tie]
    k = int(len(candidates) * fraction)
    if k == 0:
        return list(pairs), []
    weakest = sorted(candidates, key=lambda i: strength[i].item())[:k]
    out = list(pairs)
    for i in weakest:
        p = pairs[i]
        out[i] = Preference(**{**p.to_dict(), "chosen": p.rejected, "rejected": p.chosen,
                               "chosen_ended": p.rejected_ended, "rejected_ended": p.chosen_ended})
    return out, weakest


WARMUP_MAX_SHARE = 5  # the warmup takes at most total // 5 steps


def warmup_for(total: int, config: RewardConfig) -> int:
    """Warmup steps of a run of `total` steps: config.warmup_steps, but at most a fifth of
    the run, so that a short run (a few dozen labels: 7 steps) still reaches lr. The
    default toy run (3600 pairs, 7 x 57 = 399 steps) and Lab 03's (800 pairs, 3 x 13 = 39
    steps, warmup 5) keep their full warmup."""
    return min(config.warmup_steps, total // WARMUP_MAX_SHARE)


def _lr_factor(step: int, total: int, config: RewardConfig) -> float:
    """Linear warmup (warmup_for), then cosine decay to min_lr_ratio."""
    warmup = warmup_for(total, config)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def ready_to_train(model, config) -> torch.device:
    """Pick config.device, set CPU threads for the model's size, freeze the token and
    position embeddings if config.freeze_embeddings, move the model there in train mode.
    Shared by the Bradley-Terry and the rating-regression trainers."""
    from .device import pick_device, set_cpu_threads

    device = pick_device(config.device)
    if device.type == "cpu":
        set_cpu_threads(model.num_parameters(), config.threads)
    if config.freeze_embeddings:
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                module.weight.requires_grad_(False)
    model.to(device).train()
    return device


def train_reward_model(pairs: list[Preference], config: RewardConfig | None = None,
                       run_dir: str | Path | None = None,
                       on_metrics: Callable[[dict], None] | None = None,
                       should_stop: Callable[[], bool] | None = None,
                       eval_pairs: list[Preference] | None = None, strength=None):
    """Train a reward model on preference pairs; return (model, tokenizer, final).

    Held-out pairs: `eval_pairs`, else a random `config.eval_fraction` of `pairs`.
    Every step's metrics go to `on_metrics(dict)`. With a `run_dir` (a RunFolder):
    config.json (the config, n_train, n_eval), metrics.jsonl, the trained model in
    run_dir/model and result.json (status and `final`). `should_stop()` is checked before
    each step: training then ends early and what was learned so far is evaluated and saved.
    final: the evaluate_reward_model() dict on held-out pairs plus seconds, steps, n_train,
    n_eval, stopped, flipped (and run_dir with a run_dir).
    Launched as W processes (accelerate launch, torchrun), each takes 1/W of every batch,
    gradients are averaged, and only the first writes and calls on_metrics
    (docs/scale_out.md).
    `strength`: one preference strength per pair of `pairs`, measured elsewhere (an
    ensemble's, moss_lab.preference_strength); the remedies that need one use it from the
    first epoch instead of measuring the model's own gap at remedy_epoch.
    Out of memory (GPU or CPU): NotEnoughMemory, saying what to change.
    """
    config = config or RewardConfig()
    with out_of_memory_says(lambda err: (
            f"{out_of_memory_kind(err)} out of memory training a reward model on "
            f"{config.base!r}: lower batch_size (now {config.batch_size})"
            + ("" if config.freeze_embeddings else ", set freeze_embeddings")
            + ", or start from a smaller base model. The run stopped; no model was saved "
            "(its metrics so far are kept)")):
        return _train_reward_model(pairs, config, run_dir, on_metrics, should_stop,
                                   eval_pairs, strength)


def _train_reward_model(pairs, config, run_dir, on_metrics, should_stop, eval_pairs,
                        strength):
    """train_reward_model's body (that function handles running out of memory)."""
    pairs = [preferences.validate(p) for p in pairs]
    if strength is not None:
        strength = torch.as_tensor(strength, dtype=torch.float32).detach().cpu().clone()
        if strength.shape != (len(pairs),):
            raise ValueError(f"strength must hold one number per pair: {len(pairs)} pairs, "
                             f"strength of shape {tuple(strength.shape)}")
    if eval_pairs is None:
        train, held_out = split_pairs(pairs, config.eval_fraction, config.seed)
        if strength is not None:  # the same shuffle: each training pair keeps its strength
            strength = strength[split_pairs(list(range(len(pairs))), config.eval_fraction,
                                            config.seed)[0]]
    else:
        train, held_out = pairs, [preferences.validate(p) for p in eval_pairs]
    if not train:
        raise ValueError("no training pairs")
    start = time.perf_counter()
    model, tokenizer = init_reward_model(config.base, config.seed, config.attn_implementation)
    if config.lm_coef:  # refused before the run folder exists
        _check_lm_term(model)
    device = ready_to_train(model, config)
    distributed.broadcast_parameters(model)  # under a launcher: every process starts alike

    # only the main process writes (and reports); alone, that is this process
    main = distributed.is_main()
    folder = RunFolder(run_dir if main else None,
                       {**asdict(config), "n_train": len(train), "n_eval": len(held_out)})

    def emit(record: dict) -> None:
        folder.log(record)
        if on_metrics is not None and main:
            on_metrics(record)

    rng = random.Random(config.seed)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, total, config))
    flipped, stopped, step, last_eval = [], False, 0, None
    wants_strength = (config.flip_fraction > 0 or config.adaptive_margin > 0
                      or config.smooth_fraction > 0)
    remedy_at = 0 if strength is not None else min(config.remedy_epoch, config.epochs - 1)
    for epoch in range(config.epochs):
        # ---- remedies: measure preference strength once, flip the weakest pairs ----
        if wants_strength and epoch == remedy_at:
            if strength is None:
                r_c, r_r = pair_scores(model, tokenizer, train)
                strength = r_c - r_r
            if config.flip_fraction > 0:
                train, flipped = flip_weakest(train, strength, config.flip_fraction)
                strength[flipped] = -strength[flipped]
        margins_all = pair_margins(train, config, strength)
        smoothing_all = pair_smoothing(train, config, strength)
        # ---- one pass over the training pairs ----
        for idx in _batches(train, config.batch_size, config.bucket_by_length, rng):
            if distributed.any_true(should_stop is not None and should_stop()):
                stopped = True
                break
            t0 = time.perf_counter()
            # data parallel (docs/scale_out.md): this process's pairs of the batch, idx[r::W]
            # (alone: all of them); one left without a pair steps with a weight-0 pair
            mine = distributed.my_rows(idx)
            rows = mine or idx[:1]
            loss, stats = pair_loss(model, tokenizer, [train[i] for i in rows], config,
                                    margins_all[rows], smoothing_all[rows], device)
            opt.zero_grad(set_to_none=True)
            (loss * distributed.share(len(mine))).backward()  # weight W n_r / n (1 alone)
            distributed.average_gradients(model)  # g = (1/W) sum_r g_r, before clipping
            stats = distributed.mean_stats(stats, len(mine))  # pair-weighted over processes
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            opt.step()
            sched.step()
            step += 1
            emit({"step": step, "epoch": step / steps_per_epoch,
                  "lr": sched.get_last_lr()[0], **stats,
                  "time/step_s": time.perf_counter() - t0})
        # ---- held-out evaluation ----
        if held_out and (config.eval_every_epoch or stopped or epoch == config.epochs - 1):
            ev = last_eval = evaluate_reward_model(model, tokenizer, held_out)
            emit({"step": step, "epoch": step / steps_per_epoch,
                  **{f"eval/{k}": v for k, v in ev.items() if k not in ("n", "n_gold")}})
        if stopped:
            break

    model.eval()
    # the last epoch ended with an evaluation of this very model: reuse it
    final = dict(last_eval) if last_eval else {}
    final.update(seconds=time.perf_counter() - start, steps=step, n_train=len(train),
                 n_eval=len(held_out), stopped=stopped, flipped=len(flipped))
    folder.save_model(model, tokenizer, MODEL_SUBDIR)
    folder.write("result.json", {"status": "stopped" if stopped else "finished", **final})
    if run_dir is not None:  # every process says where the main one wrote
        final["run_dir"] = str(Path(run_dir))
    return model, tokenizer, final
