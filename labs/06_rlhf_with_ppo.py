# %% [markdown]
# # Lab 06 - RLHF with PPO, end to end
#
# Everything so far comes together: the toy base model (lab 01) is the **policy**, the
# reward model trained on simulated human preferences (labs 02-03) is the **reward**, and
# PPO (labs 04-05) does the fine-tuning, with a **KL penalty** that keeps the policy close
# to the model it started from. This is step 4 of the pipeline of lab 01 (step 3 in
# InstructGPT's numbering, which starts from supervised fine-tuning), at a scale that runs
# on a laptop in well under a minute.
#
# A PPO run for RLHF juggles four models:
#
# | model | what it is | trained? |
# |---|---|---|
# | policy $\pi_\theta$ | the language model being tuned | yes |
# | reference $\pi_\text{ref}$ | a frozen copy of the initial policy | no |
# | reward model $r_\phi$ | scores a finished (prompt, response) | no |
# | critic $V_\psi$ | predicts the return before each token (PPO-max: starts as a copy of the reward model) | yes |
#
# and every iteration does the same four things (`moss_lab/ppo/trainer.py`, one flat loop):
#
# 1. **rollout** - sample a response to each prompt; log-probabilities under the policy and
#    the reference; values from the critic; the reward model's score;
# 2. **rewards** - normalise the score, add it on the last token, subtract
#    $\beta\,(\log\pi - \log\pi_\text{ref})$ on every token; GAE; whitening (lab 05);
# 3. **PPO update** - a few epochs of minibatch steps on the clipped surrogate (lab 04)
#    and the clipped value loss;
# 4. **bookkeeping** - a row of metrics to `metrics.jsonl` and to your callback.
#
# The toy world has something real RLHF does not: a **gold score**, the "true" human
# preference the simulated annotators were noisy samples of. PPO never sees it; we watch
# it to know whether optimising the reward model actually helps.
#
# Three exercises on the RLHF-specific maths: the per-token **KL estimators**, the
# **per-token reward** (the KL penalty plus the score on the last real token), and the
# **exact KL** of two categorical distributions, with which we then show that a KL
# estimator with the right *value* can have the wrong *gradient*.

# %% [markdown]
# ## Objectives
#
# After this lab you can:
#
# - build the per-token RLHF reward: the score on the last real token, the KL penalty on every token;
# - compute the KL estimators $k_1, k_2, k_3$ and say which is unbiased and which is never negative;
# - run PPO end to end on the toy world and read its curves and files.
#
# **Time:** about 50 minutes of reading, exercises and the quiz; the code runs in a few minutes.
#
# After each cell that trains, measures or plots something, a **What you should see** note gives the values to expect: our values where every seed is fixed (other hardware may differ in the last digit), and otherwise the range we measured with the PPO run's seeds 0-2 (the notebook uses 0). Your output should fall inside it; times depend on your machine.

# %%
import copy
import json
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

import matplotlib.pyplot as plt
import torch
import transformers
from IPython.display import display

from moss_lab import checks, toyworld
from moss_lab.models import load_policy
from moss_lab.ppo import PPOConfig, train_ppo
from moss_lab.ppo.rollout import rollout
from moss_lab.ppo.toy import toy_reward_model_dir
from moss_lab.preferences import toy_pairs
from moss_lab.reward import evaluate_reward_model, load_reward_model
from moss_lab.sampling import generate
from moss_lab.scoring import score

transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(1)  # a 123k-parameter model: one thread is fastest on a busy laptop
plt.rcParams["figure.constrained_layout.use"] = True
RUNS = Path(tempfile.mkdtemp(prefix="moss-lab-06-"))  # run folders go here, not in the repo
print("runs in", RUNS)

# %% [markdown]
# ## 1. The policy and the reward model
#
# `load_policy("toy")` gives the toy base model (shipped with the library, copied into the
# data home on first use; `moss-lab pretrain --force` builds it from scratch).
# `toy_reward_model_dir()` gives a reward model trained with the lab 03 library on 9000
# pairs of the base model's own samples, labelled by a careful simulated annotator (noise
# 0.6: it agrees with gold on about 90% of the pairs). Its network is a 4-layer model
# (224k parameters, on a deeper base model with the same tokenizer), since a 2-layer one
# stays near 0.8 agreement with gold. It ships too; a test rebuilds it from scratch and
# finds it identical. How good is it? We label 300 fresh pairs with a noisier annotator
# (noise 1.0) and measure how often it orders them like those labels and like the gold score.

# %%
policy, tokenizer = load_policy("toy")
rm_dir = toy_reward_model_dir()
reward_model, rm_tokenizer = load_reward_model(rm_dir)
print(f"policy: {policy.num_parameters():,} parameters; reward model: {rm_dir.name}")

annotator = toyworld.SimulatedAnnotator(noise=1.0, seed=123)
fresh_pairs = toy_pairs(policy, tokenizer, 300, annotator, seed=4242)
quality = evaluate_reward_model(reward_model, rm_tokenizer, fresh_pairs)
print(f"agreement with the annotator's labels: {quality['acc_labels']:.2f}")
print(f"agreement with the gold score:         {quality['acc_gold']:.2f}")

# %% [markdown]
# **What you should see** (fixed seeds): `policy: 123,584 parameters; reward model: toy-rm-xs-seed0-n9000-v4`, then an agreement of 0.81 with the annotator's labels and 0.85 with the gold score.

# %% [markdown]
# About 85 pairs in 100 ordered like gold (fewer like the noisier annotator's labels,
# which are themselves wrong on some pairs): a good but imperfect proxy, like every
# real reward model. Keep that in mind; lab 08 is about what happens when PPO pushes on
# its mistakes.
#
# ## 2. Before: what the base model says
#
# A fixed set of prompts, answered before and after PPO. For each response: the reward
# model's score (what PPO optimises) and the gold score (what we actually want).

# %%
eval_prompts = toyworld.sample_prompts(64, seed=2024)


def evaluate(model, label, show=4):
    """Sample one response per eval prompt; print a few; return mean RM and gold scores."""
    s = generate(model, tokenizer, eval_prompts, max_new_tokens=20, seed=0)
    rm = score(reward_model, rm_tokenizer, s.prompts, s.responses)
    gold = torch.tensor([toyworld.gold_score(p, r, e).total
                         for p, r, e in zip(s.prompts, s.responses, s.ended)])
    print(f"== {label}: mean RM score {rm.mean():+.2f}   mean gold {gold.mean():+.2f}   "
          f"mean length {sum(len(r.split()) for r in s.responses) / len(s.responses):.1f} words")
    for i in range(show):
        end = "" if s.ended[i] else "  [no <eos>]"
        print(f"\n{s.prompts[i]}\n   -> {s.responses[i]}{end}\n   RM {rm[i]:+.2f}  gold {gold[i]:+.2f}")
    return {"rm": rm.mean().item(), "gold": gold.mean().item()}


before = evaluate(policy, "base model")

# %% [markdown]
# **What you should see** (fixed seeds): `== base model: mean RM score +1.51   mean gold -2.06   mean length 18.1 words`. Of the four responses shown, two run to the 20-token limit (`[no <eos>]`), and the coffee one gets RM +2.13 but gold -3.75: the reward model is a proxy.

# %% [markdown]
# ## 3. The reward, token by token
#
# The reward model gives one number per response; PPO wants one reward per token. RLHF
# builds it from two parts. The **KL penalty** is paid on every token, estimated from the
# one token that was sampled: with $\log r_t = \log\pi_\text{ref}(a_t\mid s_t) -
# \log\pi(a_t\mid s_t)$, Schulman's three estimators ("Approximating KL divergence", 2020)
# are
#
# | estimator | formula | $\mathbb{E}_{a\sim\pi}$ | sign |
# |---|---|---|---|
# | $k_1$ | $-\log r$ | $\mathrm{KL}(\pi\,\Vert\,\pi_\text{ref})$: unbiased | can be negative on one token |
# | $k_2$ | $\tfrac12(\log r)^2$ | biased (slightly, while $\pi \approx \pi_\text{ref}$) | $\ge 0$ |
# | $k_3$ | $(r - 1) - \log r$ | $\mathrm{KL}(\pi\,\Vert\,\pi_\text{ref})$: unbiased | $\ge 0$ |
#
# ($k_3$ is unbiased because $\mathbb{E}_{a\sim\pi}[r] = \sum_a \pi_\text{ref}(a) = 1$.)
# The **score** $s_i$ of response $i$ is added on its last real token $T_i$ (`<eos>`, or the
# last token before the length limit):
#
# $$r_{i,t} = -\beta\, k_{1}(i, t) \quad\text{for } t \le T_i, \qquad r_{i,T_i} \mathrel{+}= s_i, \qquad r_{i,t} = 0 \text{ on the padding.}$$
#
# Why $k_1$ summed over the tokens: by the chain rule of probability,
# $\mathbb{E}_{y\sim\pi}\big[\sum_t \log\pi(a_t\mid s_t) - \log\pi_\text{ref}(a_t\mid s_t)\big] =
# \mathrm{KL}\big(\pi(\cdot\mid x)\,\|\,\pi_\text{ref}(\cdot\mid x)\big)$, so with $\gamma = 1$
# the return of a response, $s_i - \beta\sum_t k_1(i, t)$, is an unbiased estimate of the
# objective of lab 01 for its prompt.
#
# ### Exercise 1 - the three KL estimators
#
# `logp` and `ref_logp` are `(batch, T)` log-probabilities of the sampled tokens under the
# policy and the reference. Return `(k1, k2, k3)`, each of the same shape.

# %%
def kl_estimates(logp, ref_logp):
    """(k1, k2, k3) per token, with log r = ref_logp - logp."""
    ### BEGIN SOLUTION
    log_r = ref_logp - logp
    return -log_r, 0.5 * log_r ** 2, torch.expm1(log_r) - log_r  # expm1(x) = exp(x) - 1, exactly
    ### END SOLUTION


# %%
kl_ok = checks.check_kl_estimates(kl_estimates)

# %% [markdown]
# ### Exercise 2 - the per-token reward
#
# `scores` is `(batch,)`, one score per response; `logp`, `ref_logp` and `mask` are
# `(batch, T)`, the mask 1 on each response's tokens (a prefix of its row) and 0 on the
# padding. Return the rewards `(batch, T)` above, with the $k_1$ penalty. The rows have
# different lengths: each score goes on *its own* row's last real token. The check uses
# ragged batches (rows of length 1 among them) with junk log-probabilities on the padding.

# %%
def shape_rewards(scores, logp, ref_logp, mask, kl_coef):
    """-kl_coef * (logp - ref_logp) on real tokens, + score on each row's last real token."""
    ### BEGIN SOLUTION
    rewards = -kl_coef * (logp - ref_logp) * mask
    last = mask.sum(dim=1).long() - 1
    rewards[torch.arange(len(scores)), last] += scores
    return rewards
    ### END SOLUTION


# %%
shaping_ok = checks.check_shape_rewards(shape_rewards)

# %% [markdown]
# ## 4. One iteration, by hand
#
# Before handing everything to `train_ppo`, let us run phases 1 and 2 of one iteration
# ourselves, to see the tensors of labs 04-05 in the wild. The rewards come from your
# `shape_rewards` once its check has passed (from the library's until then:
# `use_if_passed` picks, and says so); GAE and whitening from the library.

# %%
from moss_lab.ppo import gae, whiten

shape_fn = checks.use_if_passed(shape_rewards, shaping_ok, checks.shape_rewards_reference)
reference = copy.deepcopy(policy).eval()           # frozen anchor of the KL penalty
critic = copy.deepcopy(reward_model)                # PPO-max: critic starts as the RM
reward_fn = lambda prompts, responses: score(reward_model, rm_tokenizer, prompts, responses)

batch = rollout(policy, reference, critic, reward_fn, tokenizer,
                toyworld.sample_prompts(8, seed=7), max_new_tokens=20,
                generator=torch.Generator().manual_seed(0))
print("response_ids", tuple(batch.response_ids.shape), " mask", tuple(batch.mask.shape),
      " scores", tuple(batch.scores.shape))

rewards = shape_fn(batch.scores, batch.logp, batch.ref_logp, batch.mask, 0.05)
advantages, returns = gae(rewards, batch.values, gamma=1.0, lam=0.95, mask=batch.mask)
advantages = whiten(advantages, batch.mask)

row = int(batch.ended.float().argmax())  # the first response that ended with <eos>
tokens = tokenizer.convert_ids_to_tokens(batch.response_ids[row])
print(f"\nprompt: {batch.prompts[row]}   RM score {batch.scores[row]:+.2f}\n")
print(f"{'token':>12} {'logp':>7} {'ref_logp':>8} {'reward':>7} {'value':>7} {'advantage':>9}")
for t in range(int(batch.mask[row].sum())):
    print(f"{tokens[t]:>12} {batch.logp[row, t]:7.2f} {batch.ref_logp[row, t]:8.2f} "
          f"{rewards[row, t]:7.2f} {batch.values[row, t]:7.2f} {advantages[row, t]:9.2f}")


# %% [markdown]
# **What you should see** (fixed seeds): shapes `(8, 20)`, `(8, 20)` and `(8,)`; the row shown answers `say something about books` (RM score +0.99) in 17 tokens ending with `<eos>`. `logp` equals `ref_logp` on every token, so every reward is -0.00 except the last one, +0.99; the values lie between -0.93 and 1.45 and the whitened advantages between -0.69 and 0.78.

# %% [markdown]
# At the start the policy *is* the reference, so `logp == ref_logp`, the KL penalty is
# zero and the only reward is the score on the last token (`<eos>`). (The trainer also
# normalises and clips the score first, PPO-max; skipped here.) The critic is the reward
# model's network read at every prefix: before any training it already has a rough idea of
# how good the response looks so far. GAE ($\gamma = 1$, $\lambda = 0.95$) carries the
# score back to every token, through the critic's values; then the advantages are whitened
# across the batch.
#
# ## 5. The full run, with live curves
#
# `train_ppo(config, run_dir, on_metrics=...)` runs the loop and calls `on_metrics` with
# each iteration's metrics. We draw five of them while it trains (they are the signals
# MOSS-RLHF recommends watching: reward alone is not enough):
#
# * `reward/score` - the reward model's mean score: what PPO maximises;
# * `reward/gold` - the hidden true score: does the proxy's gain carry over?
# * `objective/kl` - KL to the reference per response: how far the policy has moved;
# * `objective/entropy` - how random the policy's token choices still are;
# * `response/length` - tokens per response; runaway length is an early sign of hacking.

# %%
class LiveCurves:
    """An on_metrics callback that redraws a row of plots in place while training runs."""

    PANELS = [("reward/score", "RM score (optimised)"), ("reward/gold", "gold score (hidden)"),
              ("objective/kl", "KL to reference"), ("objective/entropy", "entropy (nats/token)"),
              ("response/length", "response length (tokens)")]

    def __init__(self, every=2):
        self.rows, self.every = [], every
        self.fig, self.axes = plt.subplots(1, len(self.PANELS), figsize=(15, 2.8))
        self.handle = display(self.fig, display_id=True)
        plt.close(self.fig)  # shown through the handle only

    def __call__(self, row):
        self.rows.append(row)
        if len(self.rows) % self.every:
            return
        x = [r["iteration"] for r in self.rows]
        for ax, (key, title) in zip(self.axes, self.PANELS):
            ax.clear()
            ax.plot(x, [r.get(key, float("nan")) for r in self.rows], color="C0")
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("iteration")
        self.handle.update(self.fig)


config = PPOConfig.preset("toy-fast", iterations=30)
print(f"batch {config.batch_size} prompts x {config.max_new_tokens} new tokens, "
      f"{config.ppo_epochs} epochs of minibatch {config.minibatch_size}, lr {config.lr}, "
      f"kl_coef {config.kl_coef}, gamma {config.gamma}, lambda {config.lam}")
live = LiveCurves()
result = train_ppo(config, run_dir=RUNS / "ppo", on_metrics=live, policy=(policy, tokenizer),
                   reward_model=(reward_model, rm_tokenizer))
print(f"{result.status}: {result.reason} in {result.elapsed_s:.0f} s "
      f"({result.elapsed_s / max(result.iterations, 1):.2f} s per iteration)")

# %% [markdown]
# **What you should see** (seeds 0-2; the notebook uses 0): the settings line `batch 64 prompts x 20 new tokens, 2 epochs of minibatch 32, lr 0.0003, kl_coef 0.05, gamma 1.0, lambda 0.95`, then `finished: completed 30 iterations` (20-30 s on our busy 2-core machine). From the first iteration to the mean of the last 5: RM score 0.95-1.41 → 3.71-3.90; gold -1.71 to -1.25 → 1.54-1.73; KL 0 → 3.9-4.8 nats; entropy 0.77-0.79 → 0.37-0.42 nats per token; length 17.2-17.7 → 12.5-14.4 tokens.

# %% [markdown]
# Read the curves together:
#
# * the RM score rises, and so does the **gold** score: on this reward model, with this
#   KL penalty, optimising the proxy really improves the answers;
# * the **KL** grows from 0: the price paid for the gain, measured in nats per response;
# * **entropy** falls: the policy commits to the kind of answer the reward model likes;
# * **length** moves towards what scores best (short answers with a fact or two here).
#
# ## 6. After: the same prompts

# %%
after = evaluate(result.policy, "after PPO")
print(f"\nRM score {before['rm']:+.2f} -> {after['rm']:+.2f};   "
      f"gold {before['gold']:+.2f} -> {after['gold']:+.2f}")

# %% [markdown]
# **What you should see** (seeds 0-2; the notebook uses 0): `== after PPO:` mean RM score +3.86 to +4.12, mean gold +1.64 to +1.87, mean length 11.2-13.9 words, against +1.51, -2.06 and 18.1 before. In our run (seed 0) every response shown opens with `thanks for asking .` or `glad you asked .` and then states one or two facts on the topic, RM +3.6 to +4.6, gold +2.00 to +3.00.

# %% [markdown]
# ### Watching for pattern collapse
#
# MOSS-RLHF (Part I) found the reward the *least* reliable sign that a PPO run is going
# wrong: the reward model keeps scoring the policy higher while the text gets worse, which
# they call **pattern collapse**. Real runs have no gold score, so they watch the text:
#
# * **perplexity under the reference**, $\exp\big(-\frac1N\sum_t \log\pi_\text{ref}(a_t\mid
#   s_t)\big)$ over the $N$ sampled response tokens (`response/ref_perplexity`): how
#   surprised the starting model is by what the policy writes. It climbs when the policy
#   drifts into text the base model, and so the reward model trained on its samples, never saw;
# * **response length**: collapsing policies often write longer and longer;
# * **distinct-2** (`response/distinct_2`, `moss_lab/ppo/monitor.py`): distinct word pairs
#   divided by word pairs over the whole batch (Li et al. 2016). It falls when responses
#   repeat themselves or each other;
# * the **KL to the reference**, which keeps climbing instead of levelling off.
#
# The run's history (the rows of `metrics.jsonl`) has them all.

# %%
COLLAPSE_PANELS = [("reward/score", "RM score (optimised)"), ("reward/gold", "gold score (hidden)"),
                   ("objective/kl", "KL to reference"),
                   ("response/ref_perplexity", "perplexity under the reference"),
                   ("response/length", "response length (tokens)"),
                   ("response/distinct_2", "distinct-2 (distinct word pairs / pairs)")]
iters = [r["iteration"] for r in result.history]
fig, axes = plt.subplots(2, 3, figsize=(13, 5.2), sharex=True)
for ax, (key, title) in zip(axes.flat, COLLAPSE_PANELS):
    ax.plot(iters, [r[key] for r in result.history], color="C0")
    ax.set_title(title, fontsize=10)
for ax in axes[1]:
    ax.set_xlabel("iteration")
plt.show()
for key, title in COLLAPSE_PANELS:
    final = sum(r[key] for r in result.history[-5:]) / 5
    print(f"{title:42s} iteration 1: {result.history[0][key]:6.2f}   last 5 iterations: {final:6.2f}")

# %% [markdown]
# **What you should see** (seeds 0-2; the notebook uses 0), iteration 1 → mean of the last 5: RM score 0.95-1.41 → 3.71-3.90; gold -1.71 to -1.25 → 1.54-1.73; KL 0.00 → 3.9-4.8; perplexity under the reference 2.17-2.30 → 2.01-2.07; length 17.2-17.7 → 12.5-14.4; distinct-2 0.33-0.35 → 0.29-0.33.

# %% [markdown]
# Pattern collapse would look like this: the RM score still rising while the KL and the
# perplexity under the reference climb together, distinct-2 falls and (had we one) the gold
# score falls. This run, with $\beta = 0.05$, shows none of it. Ours, iteration 1 against
# the mean of the last 5: RM score 1.35 → 3.90 and gold -1.43 → 1.73 (still rising at the
# end), while the KL grew more slowly after the first ten iterations, to about 5 nats, the
# perplexity under the reference stayed near 2 (2.20 → 2.01; the policy writes text the
# base model finds *likely*), length fell from 17.4 to 14.3 tokens and distinct-2 went
# from 0.35 to 0.29: a little less variety as the entropy falls, not a collapse. Seeds 1
# and 2 tell the same story (the note above). Lab 08 takes the KL penalty away and these curves move.

# %% [markdown]
# ## 7. How far did it move? Three KL estimators
#
# The KL penalty needs $\mathrm{KL}(\pi\,\|\,\pi_\text{ref})$ per token, from the one token
# that was sampled: the estimators of exercise 1. With the full next-token distributions
# at hand we can also compute the exact per-token KL, and see how the three do.
#
# ### Exercise 3 - the exact KL of two categorical distributions
#
# `logits` and `ref_logits` have the same shape `(..., V)`, the last axis over the
# vocabulary. Return $\mathrm{KL}(\pi\,\|\,\pi_\text{ref}) = \sum_v \pi(v)\,(\log\pi(v) -
# \log\pi_\text{ref}(v))$ with $\pi = \mathrm{softmax}(\texttt{logits})$, shape `(...)`. The
# check compares values and gradients with respect to `logits`.

# %%
def categorical_kl(logits, ref_logits):
    """KL(softmax(logits) || softmax(ref_logits)), summed over the last axis."""
    ### BEGIN SOLUTION
    logp = torch.log_softmax(logits, dim=-1)
    ref_logp = torch.log_softmax(ref_logits, dim=-1)
    return (logp.exp() * (logp - ref_logp)).sum(dim=-1)
    ### END SOLUTION


# %%
categorical_ok = checks.check_categorical_kl(categorical_kl)

# %%
kl_exact_fn = checks.use_if_passed(categorical_kl, categorical_ok, checks.categorical_kl_reference)
estimators = checks.use_if_passed(kl_estimates, kl_ok, checks.kl_estimates_reference)
trained = result.policy.eval()
batch = rollout(trained, reference, critic, reward_fn, tokenizer,
                toyworld.sample_prompts(64, seed=99), max_new_tokens=20,
                generator=torch.Generator().manual_seed(1))
m = batch.mask.bool()
with torch.no_grad():  # exact KL at each response position, from the full distributions
    inputs, P = batch.inputs(), batch.prompt_ids.shape[1]
    exact = kl_exact_fn(trained(**inputs).logits[:, P - 1:-1].float(),
                        reference(**inputs).logits[:, P - 1:-1].float())

print(f"exact KL per token: mean {exact[m].mean():.3f}")
fig, ax = plt.subplots(figsize=(7, 3))
for kind, k in zip(("k1", "k2", "k3"), estimators(batch.logp, batch.ref_logp)):
    k = k[m]
    print(f"{kind}: mean {k.mean():.3f}   std {k.std():.3f}   share < 0: {(k < -1e-6).float().mean():.2f}")
    ax.hist(k.clamp(-2, 4).numpy(), bins=60, histtype="step", lw=1.5, label=kind)
ax.axvline(float(exact[m].mean()), color="k", ls="--", label="exact mean")
ax.set_xlabel("per-token KL estimate (clamped to [-2, 4])")
ax.set_ylabel("tokens (log scale)")
ax.set_yscale("log")
ax.legend()
plt.show()

# %% [markdown]
# **What you should see** (seeds 0-2 of the PPO run; the rollout's seed is fixed): exact KL per token 0.27-0.38 (ours 0.328). $k_1$: mean within 0.03 of the exact one, std 0.71-0.87, negative on 55-62% of the tokens. $k_2$: mean 0.03-0.07 above the exact one in every seed, std 0.86-1.18, never negative. $k_3$: mean within 0.03 of the exact one, never negative, and the largest std of the three, 1.59-1.94.

# %% [markdown]
# Compare the three means with the exact one. $k_1$ is unbiased but negative on many
# tokens; $k_2$ is always positive but biased upwards once the policy has moved; $k_3$ is
# unbiased and never negative, but it is heavy-tailed: rare large values (tokens the
# reference likes much more than the policy) give it the largest standard deviation of
# the three, so its average over a finite batch is noisy, usually a little low and high
# when one of those tokens lands in the batch. The PPO
# reward here uses $k_1$ summed over the response (`kl_estimator` in `PPOConfig`), like
# MOSS-RLHF and InstructGPT; methods that put the KL into the *loss* often pick $k_3$
# because it is never negative (GRPO does). But a right value is not a right gradient.
#
# ### An unbiased value is not an unbiased gradient
#
# A loss is differentiated with the sampled tokens held fixed. On one small categorical
# distribution (six "tokens", policy logits $\theta$, a fixed reference) we can compute
# everything exactly: each estimator's expected value $\sum_a \pi(a)\,k(a)$ and its
# expected gradient $\sum_a \pi(a)\,\nabla_\theta k(a)$, and compare them with the KL and
# its gradient, in both directions. A last column checks the exact expectation with
# 200,000 sampled tokens. (The code uses your `categorical_kl` and `kl_estimates` once
# their checks have passed.)

# %%
theta = torch.tensor([1.0, 0.5, 0.0, -0.5, -1.0, 0.3], requires_grad=True)  # policy logits
ref_logits = torch.tensor([0.0, 1.0, -0.5, 0.5, -1.0, 0.0])                 # reference


def grad(f):
    return torch.autograd.grad(f, theta)[0]


kl_value = kl_exact_fn(theta, ref_logits).item()             # KL(pi || ref)
grad_reverse = grad(kl_exact_fn(theta, ref_logits))          # what the penalty should follow
grad_forward = grad(kl_exact_fn(ref_logits.clone(), theta))  # KL(ref || pi): the other direction
pi = torch.softmax(theta, -1).detach()
ref_all = torch.log_softmax(ref_logits, -1)
tokens = torch.multinomial(pi, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))

ROWS = [  # (name, estimator used for the value, the loss whose gradient we take)
    ("k1", 0, lambda lp, rl: estimators(lp, rl)[0]),
    ("k2", 1, lambda lp, rl: estimators(lp, rl)[1]),
    ("k3", 2, lambda lp, rl: estimators(lp, rl)[2]),
    ("k1 as a reward: k1 * log pi", 0, lambda lp, rl: estimators(lp, rl)[0].detach() * lp),
]
print(f"KL(pi || ref) = {kl_value:.4f}   |grad KL(pi || ref)| = {grad_reverse.norm():.4f}   "
      f"|grad KL(ref || pi)| = {grad_forward.norm():.4f}\n")
print(f"{'used as a loss':>27} {'E[value]':>9} {'|E[grad] - grad KL(pi||ref)|':>29} "
      f"{'|E[grad] - grad KL(ref||pi)|':>29} {'same, 200k samples':>19}")
for name, which, loss_of in ROWS:
    with torch.no_grad():
        expected_value = (pi * estimators(torch.log_softmax(theta, -1), ref_all)[which]).sum()
    expected_grad = grad((pi * loss_of(torch.log_softmax(theta, -1), ref_all)).sum())
    sampled_grad = grad(loss_of(torch.log_softmax(theta, -1)[tokens], ref_all[tokens]).mean())
    print(f"{name:>27} {expected_value:9.4f} {(expected_grad - grad_reverse).norm():29.4f} "
          f"{(expected_grad - grad_forward).norm():29.4f} {(sampled_grad - grad_reverse).norm():19.4f}")

# %% [markdown]
# **What you should see** (exact; the 200k sampled tokens have a fixed seed): `KL(pi || ref) = 0.2385   |grad KL(pi || ref)| = 0.3216   |grad KL(ref || pi)| = 0.3107`. `E[value]` is 0.2385 for every row but $k_2$ (0.2549). Distance to grad KL(pi||ref): 0.3216 ($k_1$, whose expected gradient is 0), 0.0000 ($k_2$), 0.0723 ($k_3$), 0.0000 ($k_1$ as a reward); to grad KL(ref||pi): 0.3107, 0.0723, 0.0000, 0.0723. The sampled column is within 0.001 of the first gradient column: 0.3216, 0.0005, 0.0721, 0.0005.

# %% [markdown]
# Read the rows (the algebra is two lines each; try it):
#
# * **$k_1$** has the right value, but its gradient is $\nabla_\theta\log\pi(a)$, whose
#   expectation is $\sum_a \nabla_\theta\pi(a) = 0$: as a loss it does nothing on average.
# * **$k_3$** has the right value too, and its gradient is
#   $(1 - \pi_\text{ref}(a)/\pi(a))\,\nabla_\theta\log\pi(a)$, whose expectation is
#   $-\sum_a \pi_\text{ref}(a)\,\nabla_\theta\log\pi(a) = \nabla_\theta\,
#   \mathrm{KL}(\pi_\text{ref}\,\|\,\pi_\theta)$: the gradient of the KL in the *other*
#   direction (the third column is 0), not of the $\mathrm{KL}(\pi\,\|\,\pi_\text{ref})$ whose
#   value it estimates. The two directions agree to second order while $\pi$ is close to
#   $\pi_\text{ref}$, so it still pulls towards the reference, but it is not an unbiased
#   gradient of the KL penalty.
# * **$k_2$** is biased in value, yet its gradient $(\log\pi - \log\pi_\text{ref})\,
#   \nabla_\theta\log\pi$ has exactly $\nabla_\theta\mathrm{KL}(\pi\,\|\,\pi_\text{ref})$ as
#   its expectation.
# * **$k_1$ as a reward**: the same expression, $k_1\,\nabla_\theta\log\pi$, is what the
#   policy gradient does with a penalty that is part of the reward (the score-function
#   form of lab 04). That is why the trainer puts $k_1$ into the per-token reward rather
#   than into the loss; over a whole response the later tokens' penalties reach each token
#   through the return, as the chain rule above requires.
#
# The last column repeats the first gradient column with 200,000 sampled tokens instead of
# the exact expectation: the same numbers, up to sampling noise.
#
# ## 8. The run folder
#
# Every run writes the same record a notebook, the app and a test can read:
# `config.json`, `metrics.jsonl` (one row per iteration), `samples.jsonl` (a few
# responses every few iterations), `result.json`, and the final policy (`policy/`, loadable
# with `load_policy(folder)`).

# %%
run = RUNS / "ppo"
print(sorted(p.name for p in run.iterdir()))
rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
print(f"{len(rows)} metric rows; keys of one row:\n", sorted(rows[-1]))
for line in (run / "samples.jsonl").read_text().splitlines()[-2:]:
    s = json.loads(line)
    print(f"\niteration {s['iteration']}: {s['prompt']}-> {s['response']}  "
          f"(RM {s['score']:+.2f}, gold {s['gold']:+.2f})")

# %% [markdown]
# **What you should see**: `['config.json', 'metrics.jsonl', 'policy', 'result.json', 'samples.jsonl']`, `30 metric rows` whose 34 keys run from `episodes` to `val/value_loss`, and two responses of iteration 30 (in our run, seed 0: short answers opening with `sure !` or `thanks for asking .`, RM about +4, gold +2.00).

# %% [markdown]
# **Try it yourself** (each run takes seconds):
#
# * `kl_coef=0.2` or `kl_coef=0.0`: how do the KL and gold curves change? (Lab 08 looks
#   closely at $\beta = 0$.)
# * `kl_target=3.0`: an adaptive $\beta$ that steers the KL towards a target (watch
#   `objective/kl_coef` in the metrics; lab 08 writes its update rule).
# * `train_ppo(config, reward_model="gold")`: PPO on the oracle itself, an upper bound
#   no real pipeline has.
# * From a shell: `moss-lab ppo --iterations 30` runs the same loop with a progress bar.
#
# Next: lab 07 switches the PPO-max tricks off one at a time.

# %% [markdown]
# ## Recap quiz
#
# Answer in the cell below (a letter, or a number where a number is asked) and run it: each answer is checked, and a wrong one gets a hint.
#
# 1. Where is the reward model's score added in the per-token rewards?
#    - (a) On every response token
#    - (b) On the first response token
#    - (c) On the last real response token
#    - (d) On the padding after the response
#
# 2. The KL term in the per-token reward of token $t$ is
#    - (a) $+\beta(\log\pi - \log\pi_\text{ref})$
#    - (b) $-\beta(\log\pi - \log\pi_\text{ref})$
#    - (c) $-\beta \log\pi$
#    - (d) $+\beta\,k_3$
#
# 3. $\log\pi = -1.0$ and $\log\pi_\text{ref} = -1.5$ on one token. What is $k_3 = (r - 1) - \log r$, with $\log r = \log\pi_\text{ref} - \log\pi$?
#
# 4. Which KL estimator is unbiased and never negative on a token?
#    - (a) $k_1 = -\log r$
#    - (b) $k_2 = \tfrac12(\log r)^2$
#    - (c) $k_3 = (r-1) - \log r$
#    - (d) none of them
#
# 5. Of the four models of a PPO run for RLHF, which are trained?
#    - (a) The policy and the critic
#    - (b) The policy and the reward model
#    - (c) All four
#    - (d) Only the policy

# %%
from moss_lab.quiz import score_quiz

# your answers: a letter ("a" to "d"), or a number where a number is asked
quiz_answers = {1: None, 2: None, 3: None, 4: None, 5: None}
### BEGIN SOLUTION
quiz_answers = {1: "c", 2: "b", 3: 0.1065, 4: "c", 5: "a"}
### END SOLUTION
score_quiz("06", quiz_answers)
