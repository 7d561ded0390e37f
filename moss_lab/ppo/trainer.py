"""PPO for RLHF in one flat loop (Labs 06-08). Read it top to bottom, like CleanRL's ppo.py.

    setup                policy, frozen reference, critic, reward model, optimisers
    critic pre-training  a few rollouts that train the critic alone (PPO-max)
    for each iteration:
      1. rollout         sample responses; log-probs under policy and reference; values;
                         reward-model scores                                (rollout.py)
      2. rewards         PPO-max score treatment; per-token KL penalty; GAE; whitening
      3. PPO update      epochs x minibatches: clipped surrogate + clipped value loss
                         (+ entropy bonus, + ptx loss); global gradient clipping
      4. bookkeeping     adaptive beta; metrics.jsonl, samples.jsonl, checkpoints (through
                         run_folder.RunFolder); stop flag; NaN guard

Every hyperparameter is a field of PPOConfig (config.py) with a docstring. The helpers
after train_ppo only assemble what the loop logs. Under `accelerate launch` or `torchrun`
the loop is data parallel: the `distributed.*` lines (docs/scale_out.md), no-ops alone.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable

import torch

from .. import distributed, toyworld
from ..device import autocast, compute_dtype, is_out_of_memory, set_cpu_threads
from ..memory import out_of_memory_at_load, out_of_memory_reason, out_of_memory_says
from ..run_folder import RunFolder
from ..progress import phase
from ..scoring import position_ids
from .advantages import explained_variance, gae, whiten
from .config import PPOConfig
from .kl import AdaptiveKLController, FixedKLController, kl_estimate
from .losses import masked_mean, policy_loss, ptx_loss, value_loss
from .monitor import distinct_n
from .rewards import RunningMoments, shape_rewards
from .rollout import Rollout, critic_forward, policy_forward, rollout
from .setup import load_models, merge_lora, prompt_source
from .toy import toy_ptx_texts


@dataclass
class PPOResult:
    status: str                 # "finished", "stopped" (stop flag), "nan" (NaN guard) or
                                # "oom" (the GPU ran out of memory)
    reason: str                 # why it ended, in words
    iterations: int             # PPO iterations completed
    history: list[dict]         # one metrics row per iteration (as in metrics.jsonl)
    policy: object = None       # the trained policy (a copy; the input is not modified)
    tokenizer: object = None
    critic: object = None
    run_dir: Path | None = None
    elapsed_s: float = 0.0


class NonFinite(Exception):
    """Raised by the NaN guard; the message is the reason the run stops."""


class Stopped(Exception):
    """Raised when should_stop() says so; the message is the reason."""


def _check_finite(name: str, x: torch.Tensor, where: str) -> None:
    bad = int(distributed.all_reduce_sum((~torch.isfinite(x)).sum()))  # all processes stop
    if bad:
        raise NonFinite(f"non-finite {name} ({bad} of {x.numel()} values) at {where}")


def train_ppo(config: PPOConfig | None = None, run_dir: str | Path | None = None,
              on_metrics: Callable[[dict], None] | None = None,
              should_stop: Callable[[], bool] | None = None,
              policy=None, reward_model=None, ptx_texts: list[str] | None = None) -> PPOResult:
    """Fine-tune a policy with PPO against a reward model; return a PPOResult.

    policy:       (model, tokenizer), or None to load config.policy.
    reward_model: None (config.reward), a folder, "toy", "gold" (oracle, teaching only),
                  a model, a (model, tokenizer) pair, or a callable (prompts, responses)
                  -> scores.
    run_dir:      where config.json, metrics.jsonl, samples.jsonl, result.json and the
                  saved policy go (None: nothing is written).
    on_metrics:   called with each iteration's metrics row (live plots, progress bars);
                  by the main process only when several share the run.
    should_stop:  checked before every iteration; True ends the run with status "stopped".
    ptx_texts:    base-model texts for the ptx loss (default: the toy corpus).
    """
    # ===================================================================================
    # Setup
    # ===================================================================================
    config = config or PPOConfig()
    # data parallel under a launcher (docs/scale_out.md): W processes, each with 1/W of
    # every batch and minibatch; alone, rank 0 of 1 and every distributed.* call is a no-op
    rank, world_size = distributed.world()
    distributed.check_divisible("batch_size", config.batch_size)
    distributed.check_divisible("minibatch_size", config.minibatch_size)
    if config.ptx_coef > 0:
        distributed.check_divisible("ptx_batch_size", config.ptx_batch_size)
    start_time = time.perf_counter()
    threads_before = torch.get_num_threads()
    torch.manual_seed(config.seed)
    # sampling and minibatch order (each process its own stream)
    gen = torch.Generator().manual_seed(config.seed + rank * 2**32)
    with out_of_memory_says(lambda err: out_of_memory_at_load(config, err)):
        model, tokenizer, ref, critic, reward_fn, device = load_models(config, policy, reward_model)
    amp = compute_dtype(config.precision, device)  # bf16: forwards under autocast (device.py)
    for net in (model, ref, critic):
        distributed.broadcast_parameters(net)  # every process starts from rank 0's weights
    if device.type == "cpu":
        set_cpu_threads(model.num_parameters(), config.threads)
    policy_opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                  lr=config.lr, eps=config.adam_eps)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=config.critic_lr, eps=config.adam_eps)
    kl_ctl = (AdaptiveKLController(config.kl_coef, config.kl_target, config.kl_horizon)
              if config.kl_target else FixedKLController(config.kl_coef))
    moments = RunningMoments()
    draw_prompts = prompt_source(config)
    ptx_ids = ptx_inputs(config, tokenizer, device, ptx_texts)  # None when ptx_coef is 0
    main = distributed.is_main()  # only the main process writes and reports
    run = RunFolder(run_dir if main else None, config.to_dict())  # None: writes nothing
    history: list[dict] = []
    status, reason, n_rollouts = "finished", f"completed {config.iterations} iterations", 0
    doing = "the setup"  # the phase an out-of-memory error names

    def make_batch(where: str) -> tuple[Rollout, dict]:
        """Phases 1 and 2: a rollout, and the rewards, advantages and returns from it."""
        nonlocal n_rollouts, doing
        doing = f"the rollout of {where}"
        # ---- 1. rollout ------------------------------------------------------------------
        prompts = distributed.my_share(draw_prompts(n_rollouts))  # this process's block
        with autocast(device, amp):
            batch = rollout(model, ref, critic, reward_fn, tokenizer, prompts,
                            config.max_new_tokens, config.temperature, config.top_p, gen)
        n_rollouts += 1
        _check_finite("reward-model scores", batch.scores, where)
        _check_finite("log-probabilities", batch.logp, where)
        _check_finite("values", batch.values, where)

        # ---- 2. rewards: score treatment (PPO-max), KL penalty, GAE ------------------------
        score = batch.scores - config.missing_eos_penalty * (~batch.ended).float()
        if config.reward_norm or config.reward_scaling:
            moments.update(distributed.gather_rows(score))  # every process's scores
        if config.reward_norm:
            score = (score - moments.mean) / (moments.std + 1e-8)
        elif config.reward_scaling:
            score = score / (moments.std + 1e-8)
        if config.reward_clip is not None:
            score = score.clamp(-config.reward_clip, config.reward_clip)
        beta = kl_ctl.value
        kl = kl_estimate(batch.logp, batch.ref_logp, config.kl_estimator) * batch.mask
        if config.token_level_kl:  # PPO-max: -beta * KL_t on every token
            rewards, _ = shape_rewards(score, batch.logp, batch.ref_logp, batch.mask, beta,
                                       config.kl_estimator)
        else:  # one penalty for the whole response, with the score at its last token
            rewards, _ = shape_rewards(score - beta * kl.sum(1), batch.logp, batch.ref_logp,
                                       batch.mask, 0.0)
        advantages, returns = gae(rewards, batch.values, config.gamma, config.lam, batch.mask)
        if config.advantage_norm:
            advantages = whiten(advantages, batch.mask, moments=distributed.global_moments)
        if config.advantage_clip is not None:
            advantages = advantages.clamp(-config.advantage_clip, config.advantage_clip)
        return batch, {"score": score, "rewards": rewards, "kl": kl, "beta": beta,
                       "advantages": advantages, "returns": returns}

    def ppo_update(batch: Rollout, adv: torch.Tensor, returns: torch.Tensor,
                   train_policy: bool, where: str) -> tuple[dict, float]:
        """Phase 3: epochs x minibatches of gradient steps; returns (mean stats, model s)."""
        nonlocal doing
        doing = f"the update of {where}"
        stats: dict[str, list[float]] = defaultdict(list)
        model_s = 0.0
        n, n_prompt = len(batch.prompts), batch.prompt_ids.shape[1]
        mb = config.minibatch_size // world_size  # this process's share of a minibatch
        for epoch in range(config.ppo_epochs):
            order = torch.randperm(n, generator=gen).to(device)
            for k, start in enumerate(range(0, n, mb)):
                idx = order[start:start + mb]
                inputs, mask = batch.inputs(idx), batch.mask[idx]
                # token means over this share, weighted W n_r / n: averaged over the
                # processes they make the token mean over the whole minibatch (1 alone)
                share = distributed.share(mask.sum())
                tick = time.perf_counter()
                # the critic: (clipped) squared error to the GAE returns
                with autocast(device, amp):  # bf16 matmuls; values and losses in fp32
                    values = critic_forward(critic, inputs, n_prompt)
                v_loss, v_stats = value_loss(values, batch.values[idx], returns[idx], mask,
                                             config.value_clip)
                loss = share * config.vf_coef * v_loss
                if train_policy:
                    # the policy: clipped surrogate, entropy bonus, ptx loss
                    with autocast(device, amp):
                        logp, entropy = policy_forward(model, inputs, batch.response_ids[idx],
                                                       config.temperature,
                                                       with_entropy=config.entropy_coef > 0)
                    pg_loss, pg_stats = policy_loss(logp, batch.logp[idx], adv[idx], mask,
                                                    config.clip_range)
                    loss = loss + share * pg_loss
                    if config.entropy_coef > 0:
                        loss = loss - share * config.entropy_coef * masked_mean(entropy, mask)
                    if ptx_ids is not None:
                        rows = torch.randint(len(ptx_ids.input_ids),
                                             (config.ptx_batch_size // world_size,),
                                             generator=gen).to(device)
                        ids, m = ptx_ids.input_ids[rows], ptx_ids.attention_mask[rows]
                        with autocast(device, amp):
                            logits = model(input_ids=ids, attention_mask=m, use_cache=False,
                                           position_ids=ptx_ids.position_ids[rows]).logits
                        ptx = ptx_loss(logits, ids, m)
                        loss = loss + config.ptx_coef * ptx
                        stats["policy/ptx_loss"].append(ptx.item())
                    # token means, weighted like the losses: their mean over processes
                    # is the whole minibatch's (share is 1 alone)
                    stats["policy/loss"].append(share * pg_loss.item())
                    for key, value in pg_stats.items():
                        stats[f"policy/{key}"].append(share * value)
                # one gradient step for both models, after global gradient clipping
                # (PPO-max: the norm over all of a model's parameters, each model on its own)
                location = f"{where}, epoch {epoch + 1}, minibatch {k + 1}"
                _check_finite("loss", loss.detach(), location)
                policy_opt.zero_grad(set_to_none=True)
                critic_opt.zero_grad(set_to_none=True)
                loss.backward()
                model_s += time.perf_counter() - tick
                max_norm = config.max_grad_norm or math.inf
                for name, net in (("policy", model), ("val", critic)):
                    if name == "policy" and not train_policy:
                        continue
                    distributed.average_gradients(net)  # g = (1/W) sum_r g_r (DDP's rule)
                    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
                    _check_finite(f"{name} gradient norm", norm, location)
                    stats[f"{name}/grad_norm"].append(norm.item())
                if train_policy:
                    policy_opt.step()
                critic_opt.step()
                stats["val/value_loss"].append(share * v_loss.item())
                stats["val/clipfrac"].append(share * v_stats["clipfrac"])
        return distributed.mean_stats({k: sum(v) / len(v) for k, v in stats.items()}), model_s

    try:
        # ===============================================================================
        # Critic pre-training (PPO-max): the policy stays fixed
        # ===============================================================================
        pretrain_start = time.perf_counter()
        for step in range(config.critic_pretrain_steps):
            if distributed.any_true(should_stop is not None and should_stop()):
                raise Stopped(f"stopped by request during critic pre-training (step {step + 1})")
            phase("critic pre-training", step, config.critic_pretrain_steps)  # the app's status
            batch, b = make_batch(f"critic pre-training step {step + 1}")
            ppo_update(batch, b["advantages"], b["returns"], train_policy=False,
                       where=f"critic pre-training step {step + 1}")
        pretrain_s = time.perf_counter() - pretrain_start
        phase("PPO iteration 1: rollout and update")

        # ===============================================================================
        # The PPO loop
        # ===============================================================================
        for it in range(1, config.iterations + 1):
            if distributed.any_true(should_stop is not None and should_stop()):
                raise Stopped(f"stopped by request before iteration {it}")
            where = f"iteration {it}"
            t0 = time.perf_counter()
            # ---- 1 + 2. rollout, rewards, advantages ------------------------------------
            batch, b = make_batch(where)
            t1 = time.perf_counter()
            # ---- 3. PPO update ------------------------------------------------------------
            train_stats, train_model_s = ppo_update(batch, b["advantages"], b["returns"],
                                                    train_policy=True, where=where)
            t2 = time.perf_counter()
            # ---- 4. bookkeeping -------------------------------------------------------------
            batch, b = gather_batch(batch, b)  # every process's rows (alone: unchanged)
            # Adaptive beta is fed the KL the run penalises and logs as objective/kl: the
            # configured estimator summed over each response, mean over responses. Then
            # kl_target, the penalty and the plot measure one quantity (with the default
            # k1 this is the controller of Ziegler et al. unchanged).
            kl_ctl.update(b["kl"].sum(1).mean().item(), len(batch.prompts))
            gold = gold_scores(batch)  # None unless every prompt is a toy-world prompt
            row = metrics_row(it, batch, b, train_stats, gold)
            row.update(time_row(batch, t0, t1, t2, start_time, train_model_s))
            if it == 1:
                row["time/critic_pretrain_s"] = pretrain_s
            history.append(row)
            run.log(row)
            if it == 1 or it % max(1, config.sample_every) == 0:
                run.samples(sample_rows(it, batch, gold, config.n_samples))
            if config.save_every and it % config.save_every == 0:
                run.save_model(merge_lora(model), tokenizer, f"checkpoints/iter-{it:04d}")
            if on_metrics is not None and main:
                on_metrics(row)
    except Stopped as err:
        status, reason = "stopped", str(err)
    except NonFinite as err:
        status, reason = "nan", (f"NaN guard: {err}. The run stopped before the bad update "
                                 "(try a smaller lr, or check the reward model's scores)")
    except (RuntimeError, MemoryError) as err:  # torch's OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(err):
            raise
        status, reason = "oom", out_of_memory_reason(config, doing, err)
    finally:
        torch.set_num_threads(threads_before)

    # ===================================================================================
    # The end: final policy and result.json
    # ===================================================================================
    elapsed = time.perf_counter() - start_time
    if status != "oom":  # LoRA: the adapters folded in, so that run.policy is a plain model
        model = merge_lora(model, copy_first=False)
    # no iteration: nothing learned; after a NaN or out of memory: a state not worth keeping
    if config.save_final and status not in ("nan", "oom") and history:
        run.save_model(model, tokenizer, "policy")
    run.write("result.json", {"status": status, "reason": reason, "iterations": len(history),
                              "elapsed_s": elapsed, "final": history[-1] if history else None})
    return PPOResult(status, reason, len(history), history, model, tokenizer, critic,
                     run.path, elapsed)


# =======================================================================================
# Helpers of the setup and the bookkeeping (not the algorithm)
# =======================================================================================
def ptx_inputs(config: PPOConfig, tokenizer, device, texts: list[str] | None):
    """The tokenised base-model texts of the ptx loss, with their position ids (computed
    once, not per step); None when the ptx loss is off."""
    if config.ptx_coef <= 0:
        return None
    if texts is None:
        texts = toy_ptx_texts(4096, config.seed)
    ids = tokenizer(texts, return_tensors="pt", padding=True).to(device)
    ids["position_ids"] = position_ids(ids.attention_mask)
    return ids


def gather_batch(batch: Rollout, b: dict) -> tuple[Rollout, dict]:
    """The rollouts and rewards of every process as one batch, in rank order, for the
    metrics, the KL controller and the samples (alone: the same values). Response columns
    are zero-padded on the right to the longest; prompt columns too (not used after this)."""
    tensors = {f.name: distributed.gather_rows(getattr(batch, f.name)) for f in fields(batch)
               if isinstance(getattr(batch, f.name), torch.Tensor)}
    batch = replace(batch, prompts=distributed.gather_list(batch.prompts),
                    responses=distributed.gather_list(batch.responses), **tensors)
    return batch, {k: distributed.gather_rows(v) if isinstance(v, torch.Tensor) else v
                   for k, v in b.items()}


def gold_scores(batch: Rollout) -> list[float] | None:
    """The toy world's true score of each response; None unless every prompt has one."""
    if not all(toyworld.has_gold(p) for p in batch.prompts):
        return None
    return [toyworld.gold_score(p, r, bool(e)).total
            for p, r, e in zip(batch.prompts, batch.responses, batch.ended.tolist())]


def metrics_row(it: int, batch: Rollout, b: dict, train_stats: dict,
                gold: list[float] | None) -> dict:
    """One iteration's row of metrics.jsonl (the names of the field; the time/ columns
    come from time_row)."""
    n_tok = batch.mask.sum()
    kl_seq = b["kl"].sum(1)  # config.kl_estimator, summed over each response's tokens
    row = {
        "iteration": it, "episodes": it * len(batch.prompts),
        "reward/score": batch.scores.mean().item(),
        "reward/score_std": batch.scores.std().item(),
        "reward/normalized": b["score"].mean().item(),
        "reward/rlhf": (b["score"] - b["beta"] * kl_seq).mean().item(),
        "objective/kl": kl_seq.mean().item(),
        "objective/kl_coef": b["beta"],
        "objective/entropy": (masked_mean(batch.entropy, batch.mask)).item(),
        **train_stats,
        "val/mean": masked_mean(batch.values, batch.mask).item(),
        "val/explained_variance": explained_variance(batch.values, b["returns"],
                                                     batch.mask).item(),
        "response/length": (batch.mask.sum(1)).mean().item(),
        "response/eos_rate": batch.ended.float().mean().item(),
        "response/perplexity": math.exp(-(batch.logp.sum() / n_tok).item()),
        "response/ref_perplexity": math.exp(-(batch.ref_logp.sum() / n_tok).item()),
        # pattern collapse (MOSS-RLHF Part I): falls when responses repeat (monitor.py)
        "response/distinct_1": distinct_n(batch.response_ids, 1, batch.mask),
        "response/distinct_2": distinct_n(batch.response_ids, 2, batch.mask),
    }
    if gold is not None:
        row["reward/gold"] = sum(gold) / len(gold)
    return row


def time_row(batch: Rollout, t0: float, t1: float, t2: float, start_time: float,
             train_model_s: float) -> dict:
    """Where an iteration's seconds went: rollout [t0, t1], update [t1, t2], up to now."""
    t3 = time.perf_counter()
    return {
        "time/rollout_s": t1 - t0, "time/train_s": t2 - t1, "time/step_s": t3 - t0,
        "time/generate_s": batch.timings["generate"],
        "time/forward_s": sum(batch.timings.values()) - batch.timings["generate"],
        "time/train_passes_s": train_model_s,
        "time/model_s": sum(batch.timings.values()) + train_model_s,
        "time/elapsed_s": t3 - start_time,
    }


def sample_rows(it: int, batch: Rollout, gold: list[float] | None, n: int) -> list[dict]:
    """The first n responses of the rollout, for samples.jsonl."""
    rows = []
    for i in range(min(n, len(batch.prompts))):
        row = {"iteration": it, "prompt": batch.prompts[i], "response": batch.responses[i],
               "score": batch.scores[i].item(), "ended": bool(batch.ended[i])}
        if gold is not None:
            row["gold"] = gold[i]
        rows.append(row)
    return rows
