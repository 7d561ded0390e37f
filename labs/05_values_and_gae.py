# %% [markdown]
# # Lab 05 - Values and GAE
#
# Lab 04 ended with the **advantage**: how much better an action was than what the
# policy usually gets from that state. PPO multiplies every token's log-probability ratio
# by it, so the quality of the advantage estimate decides how fast and how safely the
# policy learns. This lab builds the estimator PPO (and MOSS-RLHF) uses:
#
# 1. **The value function** $V(s)$ and the **TD error** $\delta_t$ - exercise.
# 2. **GAE**, an exponentially weighted sum of TD errors - exercise, checked against
#    `moss_lab.ppo.gae`.
# 3. **The $\gamma$/$\lambda$ trade-off**, measured on a toy chain: bias against variance.
# 4. **GAE on an RLHF episode**: a score on the last token, a KL penalty on every token,
#    padding.
# 5. **Whitening** the advantages.
#
# Pure PyTorch; a few seconds on a laptop.

# %% [markdown]
# ## Objectives
#
# After this lab you can:
#
# - compute TD errors and GAE advantages, with padding masked;
# - explain the bias/variance trade-off that $\gamma$ and $\lambda$ control;
# - whiten advantages correctly over a padded batch.
#
# **Time:** about 40 minutes of reading, exercises and the quiz; the code runs in seconds.
#
# After each cell that measures or plots something, a **What you should see** note gives the values to expect: exact ones where nothing is random, and otherwise the range we measured over five seeds (the notebook's own among them). Your output should fall inside it.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
import matplotlib.pyplot as plt
import torch

from moss_lab.ppo.advantages import whiten

torch.set_num_threads(1)
torch.manual_seed(0)
plt.rcParams["figure.figsize"] = (6.4, 3.6)
plt.rcParams["figure.constrained_layout.use"] = True


# %% [markdown]
# ## 1. Values and the TD error
#
# The **value** of a state is the return the policy expects from it:
# $V(s_t) = \mathbb{E}[G_t \mid s_t]$. In RLHF the state is "prompt + the tokens so far"
# and $V$ is a second network, the **critic**, trained to predict the return (MOSS-RLHF
# initialises it from the reward model, which already knows what good text looks like).
#
# With a value function we can judge one action without waiting for the end of the
# episode. The **TD error**
#
# $$\delta_t = r_t + \gamma\, V(s_{t+1}) - V(s_t)$$
#
# compares "what I got now plus what I expect afterwards" with "what I expected before".
# If $V$ were exact, $\mathbb{E}[\delta_t] = A(s_t, a_t)$, the advantage. After the last
# token the episode is over: $V(s_T) = 0$.
#
# ### Exercise 1 - TD errors
#
# `rewards` and `values` are `(batch, T)`: `values[:, t]` is $V(s_t)$. As in lab 04 the
# responses are padded to a common length and `mask` (`(batch, T)`) is 1 on real tokens, 0
# on the padding after each response. Return $\delta$, the same shape: each row's episode
# ends after its **last real token** (so $V = 0$ after it, whatever the padded columns
# hold), and $\delta$ is 0 on the padding. The check puts junk on the padding.

# %%
def td_errors(rewards: torch.Tensor, values: torch.Tensor, gamma: float,
              mask: torch.Tensor) -> torch.Tensor:
    """delta_t = r_t + gamma * V(s_{t+1}) - V(s_t) on real tokens, with V = 0 after each
    row's last real token; 0 on the padding."""
    ### BEGIN SOLUTION
    rewards, values = rewards * mask, values * mask
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)
    return (rewards + gamma * next_values - values) * mask
    ### END SOLUTION


# %%
from moss_lab.checks import check_td_errors

td_ok = check_td_errors(td_errors)  # True when it passed


# %% [markdown]
# ## 2. From one step to all steps: GAE
#
# $\delta_t$ trusts $V$ completely after one real reward. We can also use $n$ real rewards
# before trusting $V$. Sums of TD errors telescope, so the **$n$-step advantage** is
#
# $$\hat A_t^{(n)} = \sum_{l=0}^{n-1} \gamma^l \delta_{t+l} = r_t + \gamma r_{t+1} + \dots + \gamma^{n-1} r_{t+n-1} + \gamma^n V(s_{t+n}) - V(s_t).$$
#
# $n = 1$ is the TD error; $n = \infty$ (to the end of the episode) is the Monte-Carlo
# return minus the baseline, $G_t - V(s_t)$, what REINFORCE with a baseline used in lab 04.
# **Generalised Advantage Estimation** (Schulman et al., 2016) does not choose: it takes an
# exponentially weighted average of all of them, weight $(1-\lambda)\lambda^{n-1}$ on
# $\hat A^{(n)}$, which collapses into a single sum of TD errors:
#
# $$\hat A_t^{\text{GAE}(\gamma,\lambda)} = (1-\lambda)\sum_{n\ge1}\lambda^{n-1}\hat A_t^{(n)} = \sum_{l\ge0} (\gamma\lambda)^l\,\delta_{t+l} = \delta_t + \gamma\lambda\,\hat A_{t+1}.$$
#
# The last form is the one you compute: one backward pass, like the returns of lab 04.
# The critic's training target is then $\hat A_t + V(s_t)$ (the "$\lambda$-return").
#
# ### Exercise 2 - GAE
#
# Return `(advantages, returns)`, both `(batch, T)`, with `returns = advantages + values`
# on the real tokens, and both 0 on the padding. You may call your `td_errors`.

# %%
def gae(rewards, values, gamma, lam, mask):
    """A_t = delta_t + gamma * lam * A_{t+1} (A = 0 after each row's last real token);
    returns = A + V; both 0 on the padding."""
    ### BEGIN SOLUTION
    deltas = td_errors(rewards, values, gamma, mask)
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = deltas[:, t] + gamma * lam * running
        advantages[:, t] = running
    return advantages, advantages + values * mask
    ### END SOLUTION


# %%
from moss_lab.checks import check_gae

gae_ok = check_gae(gae)

# %% [markdown]
# Let us confirm the identity above numerically: build the $n$-step advantages of the
# first step by brute force, average them with weights $(1-\lambda)\lambda^{n-1}$ (every
# $n$ past the end of the episode gives the Monte-Carlo one), and compare with GAE.
#
# From here on the code uses your `gae` once its check has passed, and the library's
# `moss_lab.ppo.gae` until then (`use_if_passed` says which).

# %%
from moss_lab.checks import use_if_passed
from moss_lab.ppo import gae as library_gae

gae_fn = use_if_passed(gae, gae_ok, library_gae)

T, gamma, lam = 6, 0.9, 0.8
r = torch.randn(1, T)
V = torch.randn(1, T)
V_next = torch.cat([V[:, 1:], torch.zeros(1, 1)], dim=1)


def n_step_advantage(n):
    n = min(n, T)
    bootstrap = V_next[0, n - 1] if n < T else 0.0  # V(s_n); the episode is over at T
    return sum(gamma**l * r[0, l] for l in range(n)) + gamma**n * bootstrap - V[0, 0]


weighted = sum((1 - lam) * lam ** (n - 1) * n_step_advantage(n) for n in range(1, 200))
print(f"weighted average of n-step advantages: {float(weighted):.6f}")
print(f"GAE:                                   {float(gae_fn(r, V, gamma, lam, torch.ones_like(r))[0][0, 0]):.6f}")

# %% [markdown]
# **What you should see:** the same number twice, to the sixth decimal (the last digit may differ by 1: float32). The number itself depends on the random episode: $-0.564295$ in the notebook's run, between $-0.73$ and $+2.31$ over torch seeds 0-4.

# %% [markdown]
# How much does the TD error $l$ steps ahead count? $(\gamma\lambda)^l$: $\lambda$ sets
# the horizon over which GAE looks at real rewards before trusting the critic.

# %%
ls = torch.arange(0, 40)
for lam_ in (0.0, 0.5, 0.9, 0.95, 1.0):
    plt.plot(ls, (1.0 * lam_) ** ls.float(), marker=".", ms=3, label=f"λ = {lam_}")
plt.xlabel("l (steps ahead)")
plt.ylabel(r"weight $(\gamma\lambda)^l$ on $\delta_{t+l}$  ($\gamma$ = 1)")
plt.title("How far GAE looks ahead")
plt.legend()
plt.show()

# %% [markdown]
# **What you should see** (exact, no randomness): $\lambda = 0$ puts all the weight on $l = 0$; $\lambda = 0.5$ halves it at every step (0.001 at $l = 10$); $\lambda = 0.9$ falls below one half after 7 steps and to 0.016 at $l = 39$; $\lambda = 0.95$ falls below one half after 14 steps and is still 0.135 at $l = 39$; $\lambda = 1$ stays at 1.

# %% [markdown]
# ## 3. The trade-off, measured: bias against variance
#
# Which $\lambda$ is best? It depends on how good the critic is.
#
# * $\lambda = 0$ uses one real reward and then believes $V$: **low variance**, but any
#   error in $V$ goes straight into the estimate (**bias**).
# * $\lambda = 1$ uses only real rewards: **unbiased**, but the noise of every future
#   reward adds up (**variance**).
#
# A toy chain makes this measurable. An episode walks through 12 states; each step gives
# a small noisy reward (like a per-token KL term), the last one adds a score of 1 (like the
# reward model's). We know the true values exactly, so we can take 4000 episodes, compute
# the $\lambda$-return of the first state, $\hat A_0 + V(s_0)$, and measure its bias and
# variance as an estimate of the true $V(s_0)$, for three critics: an untrained one
# ($V = 0$), a half-trained one ($V = 0.5\,V_\text{true}$) and a good one
# ($V = 0.9\,V_\text{true}$).

# %%
N_STATES, NOISE, EPISODES = 12, 0.2, 4000
mean_reward = torch.zeros(N_STATES)
mean_reward[-1] = 1.0  # the final score
gen = torch.Generator().manual_seed(0)
episodes = mean_reward + NOISE * torch.randn(EPISODES, N_STATES, generator=gen)


def true_values(gamma):
    return torch.stack([sum(gamma ** (k - t) * mean_reward[k] for k in range(t, N_STATES))
                        for t in range(N_STATES)])


def bias_variance(critic_scale, gamma, lam):
    """Bias^2 and variance of the lambda-return of state 0, against the undiscounted V."""
    critic = (critic_scale * true_values(gamma)).expand(EPISODES, N_STATES)
    estimate = gae_fn(episodes, critic, gamma, lam, torch.ones_like(episodes))[1][:, 0]
    target = true_values(1.0)[0]  # what we care about: the whole answer's score
    return float((estimate.mean() - target) ** 2), float(estimate.var())


lams = torch.linspace(0, 1, 21).tolist()
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
for ax, (name, scale) in zip(axes, [("untrained critic (V = 0)", 0.0),
                                    ("half-trained (V = 0.5 V_true)", 0.5),
                                    ("good critic (V = 0.9 V_true)", 0.9)]):
    b2, var = zip(*(bias_variance(scale, 1.0, l) for l in lams))
    mse = [b + v for b, v in zip(b2, var)]
    ax.plot(lams, b2, label="bias²")
    ax.plot(lams, var, label="variance")
    ax.plot(lams, mse, lw=2.5, label="error = bias² + var")
    best = lams[min(range(len(lams)), key=mse.__getitem__)]
    ax.axvline(best, color="k", ls=":", lw=1)
    ax.set_title(f"{name}\nbest λ ≈ {best:.2f}", fontsize=10)
    ax.set_xlabel("λ  (γ = 1)")
axes[0].set_ylabel("squared error of the λ-return")
axes[0].legend()
plt.show()

# %% [markdown]
# **What you should see** (episode seeds 0-4; the notebook uses 0): the variance curve is the same in the three panels, from 0.039-0.042 at $\lambda = 0$ to 0.46-0.49 at $\lambda = 1$ (at $\lambda = 1$ the critic cancels out). The bias² at $\lambda = 0$ is 0.99-1.02 for the untrained critic, 0.25-0.26 for the half-trained one and about 0.01 for the good one, and falls to about 0 at $\lambda = 1$. Best $\lambda$: 0.95-1.0 (untrained, error 0.46-0.48), 0.05-0.10 (half-trained, 0.29-0.30) and 0.0-0.05 (good, about 0.05).

# %% [markdown]
# With an untrained critic only real rewards help: the best $\lambda$ is 1. Once the
# critic is roughly right, its bias is small next to the variance of summing many noisy
# rewards, and smaller $\lambda$ wins. The better the critic, the lower the best $\lambda$.
# An LM critic starts poor (it has never seen the policy's text), which is why MOSS-RLHF
# uses $\lambda = 0.95$, initialises the critic from the reward model and **pre-trains**
# it on a few rollouts before PPO starts (lab 07 switches that off).
#
# $\gamma$ trades the same way: a smaller $\gamma$ discounts the far-away (noisy) rewards,
# so the variance falls, but the estimate now targets a discounted objective that
# undervalues the final score: bias against the quantity we care about.

# %%
gammas = [1.0, 0.99, 0.97, 0.95, 0.9, 0.85, 0.8]
b2, var = zip(*(bias_variance(0.5, g, 0.95) for g in gammas))
plt.plot(gammas, b2, marker="o", label="bias² (vs. the undiscounted value)")
plt.plot(gammas, var, marker="o", label="variance")
plt.gca().invert_xaxis()
plt.xlabel("γ  (λ = 0.95, half-trained critic)")
plt.ylabel("squared error")
plt.title("Discounting: less variance, more bias")
plt.legend()
plt.show()

# %% [markdown]
# **What you should see** (episode seeds 0-4): as $\gamma$ falls from 1 to 0.8, the bias² rises from 0.04-0.05 to 0.86-0.89 and the variance falls from 0.28-0.30 to 0.095-0.098; the two curves cross between $\gamma = 0.97$ and $\gamma = 0.95$.

# %% [markdown]
# ## 4. GAE on an RLHF episode
#
# In RLHF an episode is one response. The reward is $-\beta\,\mathrm{KL}_t$ on every token
# plus the reward model's score on the last one (lab 06 builds it with
# `moss_lab.ppo.shape_rewards`). Responses have different lengths, so a batch is padded
# after each `<eos>`, and a `mask` marks the real tokens: padding gets no reward, no
# advantage, and the last real token does not bootstrap from a padded "next state".
#
# Three responses of 10, 6 and 3 tokens, scored 1.0, -0.5 and 0.3, with a critic that
# predicts a constant 0.2:

# %%
lengths, scores = [10, 6, 3], [1.0, -0.5, 0.3]
T = max(lengths)
mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).float()
kl_per_token = 0.05 * torch.rand(3, T) * mask
rewards = -0.1 * kl_per_token  # beta = 0.1
for i, (n, s) in enumerate(zip(lengths, scores)):
    rewards[i, n - 1] += s
values = 0.2 * mask

advantages, returns = gae_fn(rewards, values, 1.0, 0.95, mask)
torch.set_printoptions(precision=2, sci_mode=False, linewidth=120)
print("advantages (gamma=1, lambda=0.95):\n", advantages)

fig, ax = plt.subplots(figsize=(8, 2.4))
im = ax.imshow(advantages.masked_fill(mask == 0, float("nan")), cmap="RdBu", vmin=-1, vmax=1)
ax.set_xlabel("token position")
ax.set_yticks(range(3), [f"score {s:+}" for s in scores])
fig.colorbar(im, label="advantage")
ax.set_title("Every token of a response shares its final score, discounted by λ")
plt.show()

# %% [markdown]
# **What you should see** (torch seeds 0-4): row 1 rises from 0.48-0.49 on its first token to 0.80 on its last (token 10), row 2 runs from $-0.55$ to $-0.70$, row 3 from 0.08 to 0.10, and every padded position is exactly 0.00. The KL term is tiny (at most $0.1 \times 0.05$ per token), so the seed moves these values by 0.02 at most.

# %% [markdown]
# Every token of a well-scored answer gets a positive advantage, fading towards the start
# of the response (the further a token is from the score, the more its advantage relies on
# the critic). The blank cells are padding: exactly zero, and excluded from every mean.
#
# ## 5. Whitening the advantages
#
# The size of the advantages depends on the reward scale, which depends on the reward
# model: a reward model whose scores are ten times larger would make every PPO step ten
# times larger. **Advantage whitening** (a standard PPO detail, `advantage_norm` in
# `PPOConfig`) removes that: over the real tokens of the whole rollout,
#
# $$\hat A \leftarrow \frac{\hat A - \operatorname{mean}(\hat A)}{\operatorname{std}(\hat A)} .$$
#
# The statistics must ignore padding; otherwise the zeros of the padding drag the mean
# towards 0 and shrink the std, by an amount that depends on how long the responses are.

# %%
white = whiten(advantages, mask)
naive = (advantages - advantages.mean()) / advantages.std()  # padding included: wrong
real = mask.bool()
print(f"masked whitening : mean {white[real].mean():+.3f}  std {white[real].std(unbiased=False):.3f}")
print(f"naive whitening  : mean {naive[real].mean():+.3f}  std {naive[real].std(unbiased=False):.3f}"
      f"   <- the real tokens are not centred")
print("scale-free: whiten(10 * A) == whiten(A):",
      torch.allclose(whiten(10 * advantages, mask), white, atol=1e-5))

# %% [markdown]
# **What you should see:** masked whitening gives mean $\pm 0.000$ and std 1.000 for any seed; the naive one gives the real tokens a mean of $+0.115$ to $+0.121$ and a std of 1.219-1.221 (torch seeds 0-4); then `True`.

# %% [markdown]
# Whitening centres the advantages too, so within a batch about half the tokens are
# pushed down and half up, whatever the absolute level of the rewards. (MOSS-RLHF also
# tried *clipping* the whitened advantages; `advantage_clip` in `PPOConfig`.)
#
# **Takeaways**
# * $\delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)$; GAE: $\hat A_t = \delta_t + \gamma\lambda\hat A_{t+1}$;
#   the critic's target is $\hat A_t + V(s_t)$.
# * $\lambda$ (and $\gamma$) trade the critic's bias against the variance of sampled
#   rewards; the best $\lambda$ falls as the critic improves.
# * Mask the padding everywhere: in the recursion, in every mean, in whitening.
#
# Next: lab 06 puts it all together and runs PPO on the toy language model.

# %% [markdown]
# ## Recap quiz
#
# Answer in the cell below (a letter, or a number where a number is asked) and run it: each answer is checked, and a wrong one gets a hint.
#
# 1. TD error $\delta_t = r_t + \gamma V(s_{t+1}) - V(s_t)$ with $r_t = 0$, $\gamma = 1$, $V(s_t) = 0.5$, $V(s_{t+1}) = 0.8$?
#
# 2. GAE with $\lambda = 0$ is
#    - (a) the one-step TD error $\delta_t$
#    - (b) the Monte Carlo return minus $V(s_t)$
#    - (c) zero
#    - (d) the reward $r_t$
#
# 3. Raising $\lambda$ towards 1 makes the advantage
#    - (a) lean more on the critic: more bias, less variance
#    - (b) independent of the rewards
#    - (c) lean less on the critic: less bias, more variance
#    - (d) the same, since only $\gamma$ matters
#
# 4. What target is the critic trained towards?
#    - (a) $r_t$
#    - (b) $\hat A_t$
#    - (c) $V(s_{t+1})$
#    - (d) $\hat A_t + V(s_t)$
#
# 5. Whitening advantages with the padding included in the mean and std
#    - (a) is fine, padding is zero
#    - (b) leaves the real tokens not centred: mask the padding
#    - (c) doubles the advantages
#    - (d) only changes the critic

# %%
from moss_lab.quiz import score_quiz

# your answers: a letter ("a" to "d"), or a number where a number is asked
quiz_answers = {1: None, 2: None, 3: None, 4: None, 5: None}
### BEGIN SOLUTION
quiz_answers = {1: 0.3, 2: "a", 3: "c", 4: "d", 5: "b"}
### END SOLUTION
score_quiz("05", quiz_answers)
