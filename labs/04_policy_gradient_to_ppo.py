# %% [markdown]
# # Lab 04 - From policy gradient to PPO
#
# A language model that answers a prompt is a **policy**: at every step it picks the next
# token from a distribution $\pi_\theta(a_t \mid s_t)$, where the state $s_t$ is the prompt
# plus the tokens written so far. RLHF scores the finished answer with a reward model and
# nudges $\theta$ so that well-scored answers become more likely. This lab builds the
# algorithm that does the nudging, one idea at a time:
#
# 1. **Return and discount** - how a reward given at the end is spread over the tokens.
# 2. **REINFORCE** - the simplest policy gradient, on a problem small enough to solve in
#    seconds.
# 3. **Baselines** - the same gradient with much less noise (we measure how much).
# 4. **The importance ratio** - reusing samples after the policy has changed.
# 5. **The clipped objective** - PPO's way of not moving too far on stale samples.
#
# Two exercises: `discounted_returns` and `clipped_surrogate_loss`. Each is checked
# against the reference in `moss_lab.ppo`. Everything here is pure PyTorch and runs in
# seconds on a laptop.

# %% [markdown]
# ## Objectives
#
# After this lab you can:
#
# - compute discounted returns-to-go;
# - explain REINFORCE, why a baseline lowers its variance, and why PPO needs the importance ratio;
# - write PPO's clipped surrogate loss and say what the clip bounds.
#
# **Time:** about 45 minutes of reading, exercises and the quiz; the code runs in seconds.
#
# After each cell that measures or plots something, a **What you should see** note gives the values to expect: exact ones where nothing is random, and otherwise the range we measured over five seeds (the notebook's own among them). Your output should fall inside it.

# %%
import warnings

import matplotlib.pyplot as plt
import torch

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
torch.set_num_threads(1)  # tiny tensors: a second thread only adds overhead
torch.manual_seed(0)
plt.rcParams["figure.figsize"] = (6.4, 3.6)
plt.rcParams["figure.constrained_layout.use"] = True

# %% [markdown]
# ## 1. Return and discount
#
# An episode gives rewards $r_0, r_1, \dots, r_{T-1}$. Its **return** is the discounted sum
#
# $$R = \sum_{t=0}^{T-1} \gamma^t \, r_t, \qquad 0 \le \gamma \le 1 .$$
#
# What a token at step $t$ can influence is only what comes after it, so the quantity a
# policy gradient uses at step $t$ is the **return-to-go**
#
# $$G_t = \sum_{k=t}^{T-1} \gamma^{\,k-t} \, r_k = r_t + \gamma\, G_{t+1}, \qquad G_T = 0 .$$
#
# The recursion on the right is how you compute it: one pass from the last step backwards.
#
# In RLHF the reward of a response of $T$ tokens looks like this: a small penalty
# $-\beta\,(\log\pi - \log\pi_\text{ref})$ on every token (the KL penalty that keeps the
# policy near the model it started from, lab 06) and the reward model's score added on the
# last token.

# %%
T = 8
kl_penalty = torch.full((T,), -0.02)  # -beta * (logp - ref_logp), made up for the example
rm_score = 1.0
rewards = kl_penalty.clone()
rewards[-1] += rm_score
print("per-token rewards:", [round(r, 2) for r in rewards.tolist()])

gamma = 0.9
R = sum(gamma**t * rewards[t] for t in range(T))
print(f"return R with gamma={gamma}: {R:.4f}")


# %% [markdown]
# **What you should see:** seven rewards of $-0.02$ and a last one of $0.98$, and `return R with gamma=0.9: 0.3644`, exactly, on every machine (no randomness).

# %% [markdown]
# Responses have different lengths, so a batch of them is **padded**: every row is as long
# as the longest response, and a `mask` of the same shape says which positions are real
# tokens (1) and which are padding after the end of the response (0). Padding is not part
# of the episode: it carries no reward, and its return is 0.
#
# ### Exercise 1 - discounted returns-to-go
#
# Write `discounted_returns(rewards, gamma, mask)`: `rewards` and `mask` have shape
# `(batch, T)`; return a tensor of the same shape with $G_t$ in column $t$ (and 0 on the
# padding). Use the backward recursion (a Python loop over $t$ is fine; $T$ is small).
# The check uses batches with and without padding, and puts junk rewards on the padding.
# Then run the check cell below it.

# %%
def discounted_returns(rewards: torch.Tensor, gamma: float, mask: torch.Tensor) -> torch.Tensor:
    """G_t = r_t + gamma * G_{t+1}, with G_T = 0, for each row of `rewards` (batch, T);
    padding (mask 0) carries no reward."""
    ### BEGIN SOLUTION
    rewards = rewards * mask
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns
    ### END SOLUTION


# %%
from moss_lab.checks import check_discounted_returns

returns_ok = check_discounted_returns(discounted_returns)  # True when it passed

# %% [markdown]
# How much credit does each token get for a reward that arrives only at the end? With
# $\gamma = 1$ every token sees the whole score; with $\gamma < 1$ the early tokens see an
# exponentially smaller share. Language-model RLHF uses $\gamma = 1$ (MOSS-RLHF, the
# "N implementation details" blog): an answer is judged as a whole, and a response is
# short enough that the variance of undiscounted returns stays manageable.
#
# (The code after an exercise runs on your function once its check has passed, and on the
# library's until then: `use_if_passed` picks, and says so when it falls back.)

# %%
from moss_lab.checks import use_if_passed
from moss_lab.ppo import discounted_returns as library_returns

returns_fn = use_if_passed(discounted_returns, returns_ok, library_returns)
T_long = 30
sparse = torch.zeros(1, T_long)
sparse[0, -1] = 1.0  # the reward model's score, on the last token only
for g in (1.0, 0.99, 0.95, 0.8):
    plt.plot(returns_fn(sparse, g, torch.ones_like(sparse))[0], marker=".", label=f"gamma = {g}")
plt.xlabel("token position t")
plt.ylabel("return-to-go $G_t$")
plt.title("A score of 1 on the last token, seen from each token")
plt.legend()
plt.show()

# %% [markdown]
# **What you should see** (exact, no randomness): every curve ends at 1 on the last token (position 29); at the first token $G_0 = \gamma^{29}$ is 1 for $\gamma = 1$, 0.75 for 0.99, 0.23 for 0.95 and 0.0015 for 0.8.

# %% [markdown]
# ## 2. REINFORCE on a tiny problem
#
# Take the smallest possible "language model": one prompt, and the model picks one of
# $K = 5$ canned replies with probabilities $\pi_\theta = \mathrm{softmax}(\theta)$. Each
# reply has a mean score (think: what a reward model says about it) and every judgement is
# noisy. This is a *bandit*; an LM answer is a sequence of such choices, one per token.
#
# The goal is to maximise $J(\theta) = \mathbb{E}_{a\sim\pi_\theta}[R(a)]$. The
# **policy-gradient theorem** (the log-derivative trick) gives
#
# $$\nabla_\theta J = \mathbb{E}_{a\sim\pi_\theta}\big[\,R(a)\,\nabla_\theta \log \pi_\theta(a)\,\big],$$
#
# which we can estimate from samples without knowing how $R$ depends on $\theta$. REINFORCE
# samples a batch, and follows the gradient of the **surrogate loss**
# $-\frac1N\sum_i R_i \log\pi_\theta(a_i)$, whose gradient is exactly that estimate.

# %%
TRUE_MEANS = torch.tensor([1.0, 1.5, 2.0, 3.0, 2.5])  # reply 3 is the best
NOISE = 1.0


def pull(actions: torch.Tensor) -> torch.Tensor:
    """A noisy score for each chosen reply."""
    return TRUE_MEANS[actions] + NOISE * torch.randn(actions.shape)


def expected_reward(theta: torch.Tensor) -> float:
    return float(torch.softmax(theta, -1) @ TRUE_MEANS)


def reinforce(steps=150, batch=16, lr=0.5, baseline="none", seed=0) -> list[float]:
    """Train theta with REINFORCE; return J(theta) after every step."""
    gen = torch.Generator().manual_seed(seed)
    theta = torch.zeros(len(TRUE_MEANS), requires_grad=True)
    curve = []
    for _ in range(steps):
        probs = torch.softmax(theta, -1)
        actions = torch.multinomial(probs.detach(), batch, replacement=True, generator=gen)
        R = TRUE_MEANS[actions] + NOISE * torch.randn(batch, generator=gen)
        b = R.mean() if baseline == "batch mean" else 0.0
        logp = torch.log_softmax(theta, -1)[actions]
        loss = -((R - b) * logp).mean()  # the surrogate: its gradient is the PG estimate
        theta.grad = None
        loss.backward()
        with torch.no_grad():
            theta -= lr * theta.grad
        curve.append(expected_reward(theta.detach()))
    return curve


curve = reinforce()
print(f"J at start {expected_reward(torch.zeros(5)):.2f} -> after 150 steps {curve[-1]:.2f} "
      f"(best possible {TRUE_MEANS.max():.1f})")


# %% [markdown]
# **What you should see** (seeds 0-4; the notebook uses 0): `J at start 2.00 -> after 150 steps 2.98` to `2.99`: one run on this easy problem finds reply 3.

# %% [markdown]
# ## 3. Baselines reduce variance
#
# Subtracting any $b$ that does not depend on the action leaves the gradient unbiased,
# because $\mathbb{E}_{a\sim\pi}[\nabla_\theta\log\pi_\theta(a)] = \nabla_\theta \sum_a \pi_\theta(a) = \nabla_\theta 1 = 0$:
#
# $$\nabla_\theta J = \mathbb{E}\big[(R(a) - b)\,\nabla_\theta\log\pi_\theta(a)\big].$$
#
# It does change the *variance*. Here every score is positive, so without a baseline
# every sampled reply gets pushed up, the good ones only slightly more than the bad ones,
# and the estimate is mostly noise. Let us **measure** it: draw many batches at the same
# $\theta$ and compute the spread of the gradient estimate. For a softmax,
# $\nabla_\theta \log\pi_\theta(a) = \mathrm{onehot}(a) - \pi_\theta$, so no autograd is
# needed.

# %%
def gradient_estimates(theta, baseline, n_batches=4000, batch=16):
    """n_batches independent REINFORCE estimates of grad J at theta, shape (n_batches, K)."""
    probs = torch.softmax(theta, -1)
    actions = torch.multinomial(probs, n_batches * batch, replacement=True).view(n_batches, batch)
    R = pull(actions)
    score_fn = torch.nn.functional.one_hot(actions, len(probs)).float() - probs  # grad log pi
    b = {"none": 0.0,
         "batch mean": R.mean(dim=1, keepdim=True),
         "true value": float(probs @ TRUE_MEANS)}[baseline]
    return ((R - b).unsqueeze(-1) * score_fn).mean(dim=1)


theta = torch.zeros(5)
probs = torch.softmax(theta, -1)
exact = probs * (TRUE_MEANS - probs @ TRUE_MEANS)  # dJ/dtheta for a softmax, in closed form
print("exact gradient      ", [round(x, 3) for x in exact.tolist()])
for b in ("none", "batch mean", "true value"):
    g = gradient_estimates(theta, b)
    print(f"baseline {b:11s} mean {[round(x, 3) for x in g.mean(0).tolist()]}  "
          f"total variance {g.var(0).sum():.4f}")

# %% [markdown]
# **What you should see** (torch seeds 0-4; the notebook uses 0): the exact gradient `[-0.2, -0.1, 0.0, 0.2, 0.1]` on every machine; the means without a baseline and with the true value within 0.01 of it, with the batch mean about 6% smaller (0.185-0.191 for the $\pm 0.2$ entries: the $(N-1)/N = 15/16$ factor). Total variance 0.264-0.272 without a baseline, 0.064-0.066 with the batch mean, 0.068-0.070 with the true value: a baseline cuts it about 4-fold.

# %% [markdown]
# All three estimates are centred on the exact gradient (the batch mean includes each
# sample's own reward, which biases it by a factor $(N-1)/N$, negligible here), but the
# baseline cuts the variance several-fold. Fewer samples for the same precision means
# faster learning:

# %%
seeds = range(20)
for b in ("none", "batch mean"):
    curves = torch.tensor([reinforce(baseline=b, seed=s) for s in seeds])
    mean, std = curves.mean(0), curves.std(0)
    plt.plot(mean, label=f"baseline: {b}")
    plt.fill_between(range(len(mean)), mean - std, mean + std, alpha=0.2)
plt.axhline(TRUE_MEANS.max(), color="gray", ls="--", lw=1)
plt.xlabel("REINFORCE step (16 samples each)")
plt.ylabel(r"expected reward $J(\theta)$")
plt.title("REINFORCE with and without a baseline (20 seeds, mean ± std)")
plt.legend()
plt.show()

# %% [markdown]
# **What you should see** (five blocks of 20 seeds, 0-19 being the notebook's): both means start near 2.0 and pass 2.5 within 9-11 steps. With the batch-mean baseline the mean passes 2.9 at step 32-35 and ends at 2.985-2.987 with a thin band (std 0.002-0.004); without it, it passes 2.9 at step 38-86 and ends at 2.94-2.99, and in three blocks of five one run of 20 is stuck near 2.5 (reply 4), which widens the band to a std of 0.11-0.13.

# %% [markdown]
# In PPO the baseline is a learned **value function** $V(s)$, and $R - V(s)$ becomes the
# **advantage** $A$: how much better this action was than what the policy usually gets
# from here. Lab 05 is about estimating it well.
#
# ## 4. The importance ratio: reusing samples
#
# Sampling from a language model is the expensive part of RLHF. REINFORCE throws each
# batch away after one gradient step. To take several steps on the same batch, we need the
# objective of the *new* policy $\pi_\theta$ estimated with samples from the *old* one
# $\pi_{\theta_\text{old}}$. Importance sampling does it:
#
# $$\mathbb{E}_{a\sim\pi_\theta}[A(a)] = \mathbb{E}_{a\sim\pi_{\text{old}}}\Big[\underbrace{\frac{\pi_\theta(a)}{\pi_{\text{old}}(a)}}_{r(\theta)}\,A(a)\Big].$$
#
# $r(\theta)$ is the **importance ratio**; in code it is `exp(logp - old_logp)`. At
# $\theta = \theta_\text{old}$, $r = 1$ and the gradient of this surrogate is exactly the
# policy gradient. Autograd confirms it:

# %%
theta_old = torch.tensor([0.3, -0.2, 0.1, 0.0, 0.4])
actions = torch.multinomial(torch.softmax(theta_old, -1), 64, replacement=True)
A = pull(actions) - float(torch.softmax(theta_old, -1) @ TRUE_MEANS)  # advantage, true baseline
old_logp = torch.log_softmax(theta_old, -1)[actions]

theta = theta_old.clone().requires_grad_(True)
logp = torch.log_softmax(theta, -1)[actions]
ratio = torch.exp(logp - old_logp)
(grad_is,) = torch.autograd.grad((ratio * A).mean(), theta)

theta = theta_old.clone().requires_grad_(True)
logp = torch.log_softmax(theta, -1)[actions]
(grad_pg,) = torch.autograd.grad((A * logp).mean(), theta)
print("surrogate gradient:", [round(x, 4) for x in grad_is.tolist()])
print("REINFORCE gradient:", [round(x, 4) for x in grad_pg.tolist()])


# %% [markdown]
# **What you should see:** two identical lists, to every printed digit, for any seed; the numbers themselves depend on the 64 samples (torch seeds 0-4: the entry of reply 3, the largest positive one, is 0.20-0.33).

# %% [markdown]
# In this bandit an episode is one action, so the importance-weighted estimate of
# $J(\theta)$ stays unbiased for any $\theta$, however far it moves from
# $\theta_\text{old}$ (as long as $\pi_\text{old}$ gives every action a nonzero
# probability). For **token sequences** that is no longer true of what PPO optimises. The
# exact ratio of a whole response is the *product* of its per-token ratios; PPO instead
# weights each token's advantage by that token's ratio alone, while the states (the
# prefixes) and the advantages still come from the old policy. That per-token objective is
# a **first-order surrogate** (Kakade & Langford 2002; TRPO): it has the same value and the
# same gradient as the true objective at $\theta = \theta_\text{old}$, and drifts from it
# as $\theta$ moves away; one more reason to stay close to $\theta_\text{old}$.
#
# Even where it is unbiased, the estimate gets noisier: its variance grows with the spread
# of the ratios. Below, we move $\theta$ further and further from $\theta_\text{old}$ and
# estimate $J(\theta)$ from old samples many times:

# %%
def kl(p_logits, q_logits):
    """KL(p || q) for two softmax distributions."""
    p = torch.softmax(p_logits, -1)
    return float((p * (torch.log_softmax(p_logits, -1) - torch.log_softmax(q_logits, -1))).sum())


direction = torch.tensor([-1.0, -1.0, 0.0, 2.0, 0.0])  # towards the best reply
probs_old = torch.softmax(theta_old, -1)
kls, rel_errors = [], []
for step in torch.linspace(0, 2.5, 11):
    theta_new = theta_old + step * direction
    ratio_table = torch.softmax(theta_new, -1) / probs_old
    estimates = []
    for _ in range(500):
        a = torch.multinomial(probs_old, 16, replacement=True)
        estimates.append((ratio_table[a] * pull(a)).mean())
    estimates = torch.stack(estimates)
    kls.append(kl(theta_new, theta_old))
    rel_errors.append(float(estimates.std() / expected_reward(theta_new)))
plt.plot(kls, rel_errors, marker="o")
plt.xlabel(r"KL($\pi_\theta \,\|\, \pi_{old}$)")
plt.ylabel("relative std of the estimate of J")
plt.title("Importance sampling gets noisy as the policy moves away")
plt.show()

# %% [markdown]
# **What you should see** (torch seeds 0-4): the KL axis is fixed, from 0 to 1.64 nats; the relative std of the estimate grows from 0.15-0.16 at KL 0 to 0.56-0.59 at KL 1.64, almost 4 times, steepest at small KL.

# %% [markdown]
# ## 5. The clipped objective
#
# So the surrogate $r(\theta)\,A$ can be trusted only near $r = 1$. Maximising it for
# many steps on one batch drives the ratios as far as they will go. TRPO constrains the KL
# explicitly; **PPO** (Schulman et al., 2017) simply removes the incentive to move the
# ratio past $1 \pm \epsilon$:
#
# $$L^{\text{CLIP}}(\theta) = \mathbb{E}\Big[\min\big(r(\theta)\,A,\ \operatorname{clip}(r(\theta), 1-\epsilon, 1+\epsilon)\,A\big)\Big].$$
#
# The `min` makes it a pessimistic bound: the clip can only take away gain, never add
# it. Drawn as a function of $r$ for one sample:

# %%
eps = 0.2
r = torch.linspace(0.0, 2.0, 401)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=False)
for ax, adv in zip(axes, (1.0, -1.0)):
    unclipped = r * adv
    l_clip = torch.minimum(unclipped, r.clamp(1 - eps, 1 + eps) * adv)
    ax.plot(r, unclipped, ls="--", color="gray", label=r"$r\,A$ (unclipped)")
    ax.plot(r, l_clip, lw=2.5, label=r"$L^{CLIP}$")
    flat = (r > 1 + eps) if adv > 0 else (r < 1 - eps)
    ax.fill_between(r, l_clip.min() - 0.1, l_clip.max() + 0.1, where=flat, alpha=0.15,
                    color="red", label="zero gradient")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_title(f"A {'>' if adv > 0 else '<'} 0: " +
                 ("make it more likely, up to 1+ε" if adv > 0 else "make it less likely, down to 1-ε"))
    ax.set_xlabel(r"ratio $r = \pi_\theta(a)/\pi_{old}(a)$")
    ax.legend(loc="upper left" if adv > 0 else "lower left")
axes[0].set_ylabel("objective for one sample")
plt.show()


# %% [markdown]
# **What you should see** (exact, no randomness): on the left the thick line follows $r$ up to $r = 1.2$ and stays at 1.2 beyond it; on the right it is flat at $-0.8$ below $r = 0.8$ and follows $-r$ above it. The red bands mark $r > 1.2$ (left) and $r < 0.8$ (right).

# %% [markdown]
# Read the two panels:
#
# * **A > 0** (a good action): the objective grows with $r$ until $1+\epsilon$, then goes
#   flat. Once the action is 20% more likely than under the old policy, this sample stops
#   pushing.
# * **A < 0** (a bad action): the objective grows as $r$ shrinks until $1-\epsilon$, then
#   goes flat.
# * If a step overshoots in the *wrong* direction (A > 0 but $r < 1-\epsilon$), the
#   unclipped term is the smaller one and the gradient is still there to pull it back.
#
# PPO minimises the negative of $L^{\text{CLIP}}$, averaged over the response tokens (a
# `mask` marks which positions are real tokens and which are padding). Two diagnostics come
# with it: **clipfrac**, the fraction of tokens where the clip was active, and an
# **approximate KL** between old and new policy.
#
# ### Exercise 2 - the clipped surrogate loss
#
# Write `clipped_surrogate_loss(logp, old_logp, advantages, mask, clip)`. All tensors have
# shape `(batch, T)`; `mask` is 1 on response tokens and 0 on padding. Return the scalar
# loss $-\,$mean over masked tokens of $\min(r A, \operatorname{clip}(r) A)$. Padding must
# not count in the mean. Only `logp` depends on $\theta$: `old_logp` and `advantages` are
# data from the rollout, constants of the loss (the check compares gradients with respect
# to `logp` only, so detaching the other two is fine).

# %%
def clipped_surrogate_loss(logp, old_logp, advantages, mask, clip=0.2):
    """-masked_mean(min(r * A, clip(r, 1 - clip, 1 + clip) * A)), r = exp(logp - old_logp)."""
    ### BEGIN SOLUTION
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip, 1 + clip) * advantages
    per_token = -torch.minimum(unclipped, clipped)
    return (per_token * mask).sum() / mask.sum()
    ### END SOLUTION


# %%
from moss_lab.checks import check_clipped_surrogate

surrogate_ok = check_clipped_surrogate(clipped_surrogate_loss)


# %% [markdown]
# ## Why the clip matters: many steps on one batch
#
# The situation PPO was designed for: take **one** batch of 16 samples from
# $\theta_\text{old}$ and run 60 gradient steps on it, once with the plain
# importance-weighted surrogate and once with the clipped one. We track how far the policy
# drifts (KL from the old policy) and how sure of itself it becomes (its entropy).

# %%
def entropy(theta):
    p = torch.softmax(theta, -1)
    return float(-(p * torch.log_softmax(theta, -1)).sum())


from moss_lab.checks import clipped_surrogate_reference

surrogate_fn = use_if_passed(clipped_surrogate_loss, surrogate_ok, clipped_surrogate_reference)


def ppo_update(theta, a, adv, old_logp, objective, epochs, lr):
    """`epochs` gradient steps on one batch; the clipped or the unclipped surrogate."""
    mask = torch.ones(1, len(a))
    for _ in range(epochs):
        logp = torch.log_softmax(theta, -1)[a]
        if objective == "clipped":
            loss = surrogate_fn(logp[None], old_logp[None], adv[None], mask, 0.2)
        else:
            loss = -(torch.exp(logp - old_logp) * adv).mean()
        theta.grad = None
        loss.backward()
        with torch.no_grad():
            theta -= lr * theta.grad
        yield theta.detach().clone()


def one_batch(gen, theta, batch=16):
    with torch.no_grad():
        a = torch.multinomial(torch.softmax(theta, -1), batch, replacement=True, generator=gen)
        R = TRUE_MEANS[a] + NOISE * torch.randn(batch, generator=gen)
        return a, R - R.mean(), torch.log_softmax(theta, -1)[a]  # advantage: batch baseline


theta_old = torch.zeros(5)
a, adv, old_logp = one_batch(torch.Generator().manual_seed(1), theta_old)
paths = {objective: list(ppo_update(theta_old.clone().requires_grad_(True), a, adv,
                                    old_logp, objective, epochs=60, lr=0.5))
         for objective in ("unclipped", "clipped")}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for objective, thetas in paths.items():
    axes[0].plot([kl(theta_old, t) for t in thetas], label=objective)
    axes[1].plot([entropy(t) for t in thetas], label=objective)
axes[0].set_ylabel(r"KL($\pi_{old} \,\|\, \pi_\theta$)")
axes[1].set_ylabel("entropy of the policy (nats)")
for ax in axes:
    ax.set_xlabel("gradient steps on the same 16 samples")
    ax.legend()
plt.show()


# %% [markdown]
# **What you should see** (batch seeds 1-5; the notebook uses 1): both start at KL 0 and entropy 1.609 ($\log 5$). Unclipped: the KL climbs to 1.95-2.55 nats over the 60 steps and the entropy falls to 0.14-0.31. Clipped: the KL levels off at 0.018-0.036 (90% of it within the first 3-12 steps) and the entropy stays at 1.57-1.59.

# %% [markdown]
# The unclipped surrogate keeps going: 16 noisy samples are treated as the truth, and the
# policy becomes almost deterministic on their evidence alone. The clipped version stops
# after a few steps: the ratios of the samples have reached $1 \pm \epsilon$ and their
# gradients are zero.
#
# Is becoming certain that fast bad? Only when the batch was misleading - and with noisy
# rewards, some batches are. Below is the full loop, as PPO runs it: 40 iterations of
# (collect 16 samples, 10 gradient steps on them), for 20 seeds, at three step sizes. We
# count the runs that end stuck on a reply that is not the best one: a deterministic
# policy never samples the other replies again, so it cannot discover its mistake.

# %%
def ppo_loop(objective, lr, iters=40, epochs=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    theta = torch.zeros(5, requires_grad=True)
    for _ in range(iters):
        a, adv, old_logp = one_batch(gen, theta)
        for _ in ppo_update(theta, a, adv, old_logp, objective, epochs, lr):
            pass
    return expected_reward(theta.detach())


table = [(lr, objective, torch.tensor([ppo_loop(objective, lr, seed=s) for s in range(20)]))
         for lr in (0.5, 2.0, 4.0) for objective in ("unclipped", "clipped")]
print(f"{'step size':>9} {'objective':>10} {'final J (mean)':>15} {'runs stuck':>11}")
for lr, objective, finals in table:
    stuck = int((finals < 2.9).sum())  # ended on a reply other than the best one
    print(f"{lr:9} {objective:>10} {finals.mean():15.3f} {stuck:8d}/20")

# %% [markdown]
# **What you should see** (five blocks of 20 seeds, 0-19 being the notebook's): at step size 0.5, final J 2.990-2.995 unclipped and 2.978-2.982 clipped, no run stuck; at 2.0, unclipped 2.67-2.80 with 6-8 of 20 runs stuck; at 4.0, unclipped 2.60-2.85 with 4-10 stuck. Clipped runs end at 2.978-2.995 at every step size, and none of the 300 we ran got stuck.

# %% [markdown]
# With gentle steps both work. As each batch is optimised harder, the unclipped version
# locks onto whatever its batches said and a growing share of runs get stuck on a
# second-best reply; over these step sizes, no clipped run got stuck. The clip does not
# make PPO indifferent to the step size: it zeroes the gradient of a sample only once that
# sample's ratio is already past $1 \pm \epsilon$ (in the direction its advantage wants),
# so it bounds how far the *repeated* steps on one batch go, not how far one step jumps: a
# step size large enough overshoots the clip range in a single update. What it removes is
# the incentive to keep pushing on one batch, and that robustness is the whole trick. The rest of PPO is about good advantages (lab 05)
# and keeping a long run stable (labs 06-07).
#
# **Takeaways**
# * return-to-go $G_t = r_t + \gamma G_{t+1}$; RLHF uses $\gamma = 1$ and puts the score on
#   the last token.
# * REINFORCE: $\nabla J \approx \frac1N\sum (R_i - b)\nabla\log\pi(a_i)$; a baseline
#   leaves it unbiased and cuts the variance.
# * Reusing samples needs the ratio $\pi_\theta / \pi_\text{old}$; PPO clips it so that
#   several epochs over one batch stay close to the policy that collected it.
#
# Next: lab 05, values and GAE.

# %% [markdown]
# ## Recap quiz
#
# Answer in the cell below (a letter, or a number where a number is asked) and run it: each answer is checked, and a wrong one gets a hint.
#
# 1. Rewards $(0, 0, 1)$ on three tokens, $\gamma = 0.9$. What is the return-to-go $G_0$ of the first token?
#
# 2. What does subtracting a baseline $b$ from the return do to the REINFORCE gradient?
#    - (a) It biases the gradient but lowers its variance
#    - (b) It leaves the gradient unbiased and lowers its variance
#    - (c) It raises the variance
#    - (d) It is needed only for the importance ratio
#
# 3. Why does PPO multiply by the ratio $\pi_\theta(a)/\pi_\text{old}(a)$?
#    - (a) To reuse, for several steps, samples collected by the older policy
#    - (b) To normalise the rewards
#    - (c) To compute the KL penalty
#    - (d) To make the loss positive
#
# 4. Clipped objective $\min\big(\rho A, \operatorname{clip}(\rho, 1-\epsilon, 1+\epsilon) A\big)$ with $\rho = 1.5$, $A = 2$, $\epsilon = 0.2$?
#
# 5. What does the clip bound?
#    - (a) The size of every gradient step
#    - (b) The rewards
#    - (c) How far repeated steps on one batch go: a sample's gradient is zero once its ratio is past $1 \pm \epsilon$ in the direction its advantage wants
#    - (d) The norm of the gradient

# %%
from moss_lab.quiz import score_quiz

# your answers: a letter ("a" to "d"), or a number where a number is asked
quiz_answers = {1: None, 2: None, 3: None, 4: None, 5: None}
### BEGIN SOLUTION
quiz_answers = {1: 0.81, 2: "b", 3: "a", 4: 2.4, 5: "c"}
### END SOLUTION
score_quiz("04", quiz_answers)
