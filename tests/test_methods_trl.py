"""Cross-checks of moss_lab.methods with trl 1.16's own computations, on the same batch.

DPO: DPOTrainer.compute_loss on a collated batch. GRPO and RLOO: the trainers'
_generate_and_score_completions (advantages, from rewards we choose) and compute_loss (the
loss, with old and reference log-probs we perturb so that clipping and KL matter).
Best-of-n: the analytic KL against the exact best-of-n distribution of a categorical.

The GRPO/RLOO prompts have the same number of tokens on purpose: trl 1.16 scores
left-padded prompts without position ids, so a padded GPT-2 row would see shifted
positions there (and not in our code, which counts real tokens only).
"""
import copy
import itertools
import math

import pytest
import torch

from moss_lab import toyworld
from moss_lab.methods import best_of_n as bon
from moss_lab.methods import dpo, grpo, rloo
from moss_lab.ppo.rollout import policy_forward, sequence_inputs

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

TOL = 1e-6
CPU = {"report_to": "none", "use_cpu": True, "bf16": False, "gradient_checkpointing": False,
       "save_strategy": "no", "logging_steps": 1, "seed": 0}
# two prompts of the same token length (see the module docstring)
GROUP_PROMPTS = [toyworld.format_prompt("tell me about bees ."),
                 toyworld.format_prompt("tell me about tea .")]
# rewards of 2 prompts x 4 samples: distinct values, a tie, and a negative one
REWARDS = [1.0, 0.5, -0.25, 2.0, 0.3, 0.3, 1.7, -1.1]
G = 4


def perturbed(model, scale=0.05, seed=1):
    """A copy of `model` with Gaussian noise on every weight: a policy that differs from its
    reference (and keeps config._name_or_path, from which trl rebuilds the reference)."""
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return out


def our_token_logps(model, inputs):
    """Our per-token log-probs of trl's completions, (B, T) (prompts must be unpadded)."""
    assert bool(inputs["prompt_mask"].all()), "equal-length prompts expected"
    seq = sequence_inputs(inputs["prompt_ids"], inputs["prompt_mask"],
                          inputs["completion_ids"], inputs["completion_mask"])
    logp, _ = policy_forward(model, seq, inputs["completion_ids"], with_entropy=False)
    return logp


def given_rewards(prompts, completions, reward, **kwargs):
    """A trl reward function returning the dataset's `reward` column: rewards we choose."""
    return list(reward)


def group_rows():
    return [{"prompt": GROUP_PROMPTS[i // G], "reward": r} for i, r in enumerate(REWARDS)]


def group_dataset():
    return datasets.Dataset.from_list(group_rows())


# ----------------------------------------------------------------------------- DPO (Lab 09)

DPO_PAIRS = [(GROUP_PROMPTS[0], "bees make sweet honey .", "go away ."),
             (GROUP_PROMPTS[0], "happy to help . bees live in a hive .", "well , ok ."),
             (toyworld.format_prompt("can you explain tea ?"), "tea is made from leaves .",
              "tea is made from leaves . tea is made from leaves ."),
             (GROUP_PROMPTS[1], "i do not care .", "bees help flowers grow . i hope this helps .")]


@pytest.fixture(scope="module")
def dpo_models(toy_policy):
    policy, tokenizer = toy_policy
    return perturbed(policy).eval(), copy.deepcopy(policy).eval(), tokenizer


@pytest.mark.parametrize("loss_type,label_smoothing", [("sigmoid", 0.0), ("hinge", 0.0),
                                                       ("ipo", 0.0), ("robust", 0.2)])
def test_dpo_loss_equals_trl_compute_loss(dpo_models, tmp_path, loss_type, label_smoothing):
    """Our response_logps + dpo_loss against DPOTrainer.compute_loss (trl/trainer/dpo_trainer.py,
    `_compute_loss`) on the batch trl itself tokenised and collated."""
    policy, ref, tokenizer = dpo_models
    prompts, chosen, rejected = map(list, zip(*DPO_PAIRS))
    ds = datasets.Dataset.from_dict({"prompt": prompts, "chosen": chosen, "rejected": rejected})
    args = trl.DPOConfig(output_dir=str(tmp_path), loss_type=[loss_type], beta=0.5,
                         label_smoothing=label_smoothing, **CPU)
    trainer = trl.DPOTrainer(model=copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args,
                             train_dataset=ds, processing_class=tokenizer)
    for row, (p, c, r) in zip(trainer.train_dataset, DPO_PAIRS):  # same tokens as ours
        for response, key in ((c, "chosen_ids"), (r, "rejected_ids")):
            prompt_ids, response_ids = dpo.response_token_ids(tokenizer, p, response)
            assert (row["prompt_ids"], row[key]) == (prompt_ids, response_ids)
    inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(DPO_PAIRS))])
    trainer.model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, dict(inputs)).item()
        pc, n_c = dpo.response_logps(policy, tokenizer, prompts, chosen)
        pr, n_r = dpo.response_logps(policy, tokenizer, prompts, rejected)
        rc, _ = dpo.response_logps(ref, tokenizer, prompts, chosen)
        rr, _ = dpo.response_logps(ref, tokenizer, prompts, rejected)
        ours, chosen_rewards, rejected_rewards = dpo.dpo_loss(
            pc, pr, rc, rr, beta=0.5, loss_type=loss_type, label_smoothing=label_smoothing,
            chosen_lengths=n_c, rejected_lengths=n_r)
    assert abs(ours.item() - trl_loss) <= TOL
    metrics = trainer._metrics["eval"]
    assert abs(chosen_rewards.mean().item() - metrics["rewards/chosen"][-1]) <= TOL
    assert abs(rejected_rewards.mean().item() - metrics["rewards/rejected"][-1]) <= TOL
    assert (chosen_rewards - rejected_rewards).abs().min() > 0.01  # policy != ref: a real test


def test_dpo_label_smoothing_is_the_conservative_mixture():
    """trl 1.16's "sigmoid" ignores label_smoothing; ours is cDPO: the expected loss when each
    label is flipped with probability eps (checked against that definition)."""
    gen = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(5, generator=gen) * 3 for _ in range(4))
    eps, beta = 0.1, 0.3
    ours = dpo.dpo_loss(pc, pr, rc, rr, beta, label_smoothing=eps)[0]
    kept = dpo.dpo_loss(pc, pr, rc, rr, beta)[0]
    flipped = dpo.dpo_loss(pr, pc, rr, rc, beta)[0]  # chosen and rejected swapped
    assert abs(ours.item() - ((1 - eps) * kept + eps * flipped).item()) <= TOL


# ---------------------------------------------------------------------------- GRPO (Lab 10)

def grpo_trainer(policy, tokenizer, tmp_path, **kw):
    args = trl.GRPOConfig(output_dir=str(tmp_path), num_generations=G, max_completion_length=6,
                          per_device_train_batch_size=len(REWARDS), **{**CPU, **kw})
    return trl.GRPOTrainer(model=copy.deepcopy(policy), reward_funcs=given_rewards, args=args,
                           train_dataset=group_dataset(), processing_class=tokenizer)


@pytest.fixture(scope="module")
def grpo_policy(toy_policy):
    policy, tokenizer = toy_policy
    return perturbed(policy).eval(), tokenizer


@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_grpo_advantages_equal_trl(grpo_policy, tmp_path, scale_rewards):
    """group_advantages against GRPOTrainer._generate_and_score_completions
    (trl/trainer/grpo_trainer.py): trl's advantages from the rewards we hand it."""
    policy, tokenizer = grpo_policy
    trainer = grpo_trainer(policy, tokenizer, tmp_path, scale_rewards=scale_rewards)
    trainer.model.eval()
    out = trainer._generate_and_score_completions(group_rows())
    ours = grpo.group_advantages(torch.tensor(REWARDS), G, scale_rewards)
    assert torch.allclose(ours, out["advantages"].float(), rtol=0, atol=TOL)


@pytest.mark.parametrize("loss_type,kl_ratio_correction", [("dapo", True), ("dapo", False),
                                                           ("grpo", True), ("bnpo", True),
                                                           ("dr_grpo", True)])
def test_grpo_loss_equals_trl_compute_loss(grpo_policy, tmp_path, loss_type, kl_ratio_correction):
    """grpo_loss (clipped surrogate + beta * k3, each aggregation) against
    GRPOTrainer.compute_loss (`_compute_loss`), value and gradient, on trl's own batch with
    old and reference log-probs moved off the policy's so that the clip and the KL act."""
    policy, tokenizer = grpo_policy
    beta, eps_low, eps_high = 0.04, 0.2, 0.28
    trainer = grpo_trainer(policy, tokenizer, tmp_path, loss_type=loss_type, beta=0.0,
                           epsilon=eps_low, epsilon_high=eps_high,
                           use_bias_correction_kl=kl_ratio_correction)
    assert trl.GRPOConfig.__dataclass_fields__["loss_type"].default == "dapo"  # trl 1.16's default
    trainer.model.eval()
    inputs = trainer._generate_and_score_completions(group_rows())
    mask = inputs["completion_mask"].float()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        logp = our_token_logps(policy, inputs)
    inputs["old_per_token_logps"] = logp + 0.3 * torch.randn(logp.shape, generator=gen)
    inputs["ref_per_token_logps"] = logp + 0.5 * torch.randn(logp.shape, generator=gen)
    trainer.beta = beta  # the KL term reads self.beta and inputs["ref_per_token_logps"]

    trl_loss = trainer.compute_loss(trainer.model, inputs)
    trl_loss.backward()
    ours_model = copy.deepcopy(policy)
    ours, stats = grpo.grpo_loss(our_token_logps(ours_model, inputs), inputs["old_per_token_logps"],
                                 inputs["advantages"], mask, inputs["ref_per_token_logps"], beta,
                                 eps_low, eps_high, loss_type,
                                 n_tokens=inputs["num_items_in_batch"], max_completion_length=6,
                                 kl_ratio_correction=kl_ratio_correction)
    ours.backward()
    assert abs(ours.item() - trl_loss.item()) <= TOL
    assert 0.0 < stats["clipfrac"] < 1.0
    assert abs(stats["kl"] - trainer._metrics["eval"]["kl"][-1]) <= TOL
    for (name, p_trl), p_ours in zip(trainer.model.named_parameters(), ours_model.parameters()):
        assert torch.allclose(p_trl.grad, p_ours.grad, rtol=1e-4, atol=1e-7), name


# ---------------------------------------------------------------------------- RLOO (Lab 10)

@pytest.mark.parametrize("normalize", [False, True])
def test_rloo_advantages_equal_trl(toy_policy, tmp_path, normalize):
    """kl_penalised_rewards + leave_one_out_advantages against RLOOTrainer.
    _generate_and_score_completions (trl/trainer/rloo_trainer.py), beta = 0.05 (trl's
    default): the reference is rebuilt by trl from the base model's folder."""
    base, tokenizer = toy_policy
    policy = perturbed(base).eval()
    args = trl.RLOOConfig(output_dir=str(tmp_path), num_generations=G, max_completion_length=6,
                          per_device_train_batch_size=len(REWARDS), beta=0.05,
                          normalize_advantages=normalize, **CPU)
    trainer = trl.RLOOTrainer(model=copy.deepcopy(policy), reward_funcs=given_rewards, args=args,
                              train_dataset=group_dataset(), processing_class=tokenizer)
    trainer.model.eval()
    inputs = trainer._generate_and_score_completions(group_rows())
    mask = inputs["completion_mask"].float()
    with torch.no_grad():
        logp, ref_logp = our_token_logps(policy, inputs), our_token_logps(base, inputs)
    assert torch.allclose((logp * mask).sum(1), inputs["old_logps"], atol=1e-5)
    rewards = rloo.kl_penalised_rewards(torch.tensor(REWARDS), logp, ref_logp, mask, beta=0.05)
    assert (rewards - torch.tensor(REWARDS)).abs().max() > 0.01  # the KL penalty is not zero
    ours = rloo.leave_one_out_advantages(rewards, G, normalize=normalize)
    assert torch.allclose(ours, inputs["advantages"].float(), rtol=0, atol=TOL)


def test_leave_one_out_is_the_mean_of_the_others():
    """b_i by brute force: the mean of the other k - 1 rewards of the group."""
    r = torch.tensor(REWARDS)
    brute = torch.tensor([r[i] - torch.cat([r[(i // G) * G:i], r[i + 1:(i // G + 1) * G]]).mean()
                          for i in range(len(r))])
    assert torch.allclose(rloo.leave_one_out_advantages(r, G), brute, atol=TOL)


def test_rloo_loss_equals_trl_compute_loss(toy_policy, tmp_path):
    """rloo_loss (sequence-level ratio, clipped) against RLOOTrainer.compute_loss, with old
    sequence log-probs moved so that some ratios are clipped."""
    base, tokenizer = toy_policy
    policy = perturbed(base).eval()
    args = trl.RLOOConfig(output_dir=str(tmp_path), num_generations=G, max_completion_length=6,
                          per_device_train_batch_size=len(REWARDS), beta=0.0, **CPU)
    trainer = trl.RLOOTrainer(model=copy.deepcopy(policy), reward_funcs=given_rewards, args=args,
                              train_dataset=group_dataset(), processing_class=tokenizer)
    trainer.model.eval()
    inputs = trainer._generate_and_score_completions(group_rows())
    gen = torch.Generator().manual_seed(4)
    inputs["old_logps"] = inputs["old_logps"] + 0.4 * torch.randn(len(REWARDS), generator=gen)
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, inputs).item()
        seq_logp = (our_token_logps(policy, inputs) * inputs["completion_mask"]).sum(1)
        ours, stats = rloo.rloo_loss(seq_logp, inputs["old_logps"], inputs["advantages"])
    assert abs(ours.item() - trl_loss) <= TOL
    assert 0.0 < stats["clipfrac"] < 1.0


# ------------------------------------------------------------------------ best-of-n (Lab 10)

def test_best_of_n_distribution_by_enumerating_all_draws():
    """P_bon(x) = F(x)^n - F(x-)^n against all K^n ordered draws of n from a categorical."""
    probs = torch.tensor([0.1, 0.4, 0.2, 0.3], dtype=torch.float64)
    rewards = torch.tensor([2.0, -1.0, 0.5, 3.0])
    n = 3
    brute = torch.zeros(4, dtype=torch.float64)
    for draw in itertools.product(range(4), repeat=n):
        best = max(draw, key=lambda i: rewards[i])
        brute[best] += math.prod(probs[i] for i in draw)
    _, exact = bon.best_of_n_distribution(probs, rewards, n)
    order = torch.argsort(rewards)
    assert torch.allclose(exact, brute[order], atol=1e-12)
    kl = float((brute * (brute / probs).log()).sum())
    assert abs(bon.exact_best_of_n_kl(probs, rewards, n) - kl) <= 1e-12


@pytest.mark.parametrize("n", [1, 2, 4, 16, 64])
def test_analytic_kl_is_the_limit_of_many_outcomes(n):
    """For 200k outcomes of tiny random mass and distinct rewards, the exact KL of best-of-n
    matches log n - (n - 1) / n; with atoms it is below it."""
    gen = torch.Generator().manual_seed(n)
    probs = torch.rand(200_000, generator=gen, dtype=torch.float64) + 0.5
    probs /= probs.sum()
    rewards = torch.randperm(200_000, generator=gen).double()
    assert abs(bon.exact_best_of_n_kl(probs, rewards, n) - bon.analytic_kl(n)) < 1e-4
    few = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)  # heavy atoms
    if n > 1:
        atoms_kl = bon.exact_best_of_n_kl(few, torch.tensor([0.0, 1.0, 2.0]), n)
        assert atoms_kl < bon.analytic_kl(n) - 0.01
    assert bon.analytic_kl(1) == 0.0


def test_best_of_n_keeps_the_highest_score(toy_policy):
    """On the toy model: every kept response has the max score among its n candidates."""
    policy, tokenizer = toy_policy
    questions = ("tell me about bees .", "can you explain tea ?", "what are cats like ?")
    prompts = [toyworld.format_prompt(q) for q in questions]

    def reward_fn(ps, rs):  # the toy world's gold score: integer-ish, so ties happen
        return torch.tensor([toyworld.gold_score(p, r).total for p, r in zip(ps, rs)])

    out = bon.best_of_n(policy, tokenizer, prompts, n=6, reward_fn=reward_fn,
                        max_new_tokens=16, seed=0)
    assert out.all_scores.shape == (3, 6) and len(out.all_responses[0]) == 6
    assert torch.equal(out.scores, out.all_scores.max(dim=1).values)
    for prompt, kept, score, cands in zip(prompts, out.responses, out.scores, out.all_responses):
        assert kept in cands
        assert reward_fn([prompt], [kept]).item() == score.item()
    assert len({r for c in out.all_responses for r in c}) > 3  # real sampling, not one response
    kl = bon.measured_kl(policy, tokenizer, prompts[:1], 6, reward_fn, m=64, max_new_tokens=16,
                         seed=1)
    assert 0.0 < kl.item() <= bon.analytic_kl(6) + 1e-12
