# %% [markdown]
# # Lab 02 — Preferences and Bradley–Terry
#
# People find it much easier to say *"answer A is better than answer B"* than to grade an answer on an absolute scale. Step 2 of the pipeline collects such comparisons; step 3 turns them into a **reward**: one number per answer, the signal PPO will maximise.
#
# The bridge between the two is the **Bradley–Terry model** (1952; the same idea as the Elo rating of chess players). In this lab you will:
#
# 1. write the probability $P(A \succ B) = \sigma(r_A - r_B)$;
# 2. write the loss that fits scores to comparisons, $-\log \sigma(r_\text{chosen} - r_\text{rejected})$, and see why it must be computed carefully;
# 3. recover the scores of five items from simulated comparisons by **maximum likelihood**;
# 4. see why **only differences** between scores mean anything (and what sets their scale);
# 5. derive the **gradient** of the loss by hand, and read from it what the model learns from each pair.
#
# Everything is pure torch on a handful of numbers: the notebook runs in seconds.

# %% [markdown]
# ## Objectives
#
# After this lab you can:
#
# - write the Bradley–Terry probability, its loss and the loss's gradient, and compute the loss stably;
# - recover scores from comparisons by maximum likelihood;
# - explain why only score differences matter and what sets their scale.
#
# **Time:** about 40 minutes of reading, exercises and the quiz; the code runs in seconds.
#
# After each cell that measures or plots something, a **What you should see** note gives the values to expect: exact ones where nothing is random, and otherwise the range we measured over five seeds (the notebook's own among them). Your output should fall inside it.

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from moss_lab import checks

torch.set_num_threads(1)


# %% [markdown]
# ## 1. From "A is better than B" to a probability
#
# Give every answer a score $r$. Bradley–Terry says that in a comparison, $A$ wins with probability
#
# $$P(A \succ B) \;=\; \frac{e^{r_A}}{e^{r_A} + e^{r_B}} \;=\; \frac{1}{1 + e^{-(r_A - r_B)}} \;=\; \sigma(r_A - r_B),$$
#
# where $\sigma$ is the logistic sigmoid. Three things follow at once:
#
# - equal scores give a coin flip: $\sigma(0) = \tfrac12$;
# - the two outcomes add up to one: $\sigma(d) + \sigma(-d) = 1$;
# - a bigger gap gives a more certain winner, but never a certain one: a gap of 1 wins 73% of the time, a gap of 3 wins 95%.
#
# The simulated annotator of lab 01 is exactly this model, with $r = (g + b\,\ell) / \tau$: the gold score plus the length bias $b$ times the length $\ell$ in words, divided by the noise, since $\sigma\big((g_A - g_B + b(\ell_A - \ell_B))/\tau\big) = \sigma(r_A - r_B)$. Without a length bias ($b = 0$) that is $r = g / \tau$.
#
# ### Exercise 1: the Bradley–Terry probability
#
# `r_a` and `r_b` are tensors of the same shape; return $P(A \succ B)$ for each entry.

# %%
def bt_probability(r_a, r_b):
    """P(A preferred over B) = sigmoid(r_A - r_B), elementwise."""
    ### BEGIN SOLUTION
    return torch.sigmoid(r_a - r_b)
    ### END SOLUTION


# %%
checks.check_bt_probability(bt_probability)

# %%
gaps = torch.linspace(-6, 6, 200)
plt.figure(figsize=(5.5, 3.4))
plt.plot(gaps, torch.sigmoid(gaps))
for gap in (1, 3):
    plt.plot([gap], [torch.sigmoid(torch.tensor(gap * 1.0))], "o", color="tab:orange")
    plt.annotate(f"gap {gap}: {torch.sigmoid(torch.tensor(gap * 1.0)):.2f}", (gap, torch.sigmoid(torch.tensor(gap * 1.0))),
                 xytext=(gap + 0.4, torch.sigmoid(torch.tensor(gap * 1.0)) - 0.12))
plt.axhline(0.5, color="gray", ls=":")
plt.xlabel("score gap $r_A - r_B$")
plt.ylabel("$P(A \\succ B)$")
plt.title("Bradley–Terry: the score gap sets the odds")
plt.show()

# %% [markdown]
# **What you should see:** an S-curve through $(0, 0.5)$, with the two marked points at 0.73 (gap 1) and 0.95 (gap 3). No randomness here: the same on every machine.

# %% [markdown]
# ## 2. The loss: how likely are the labels we saw?
#
# Our data is a list of comparisons, each written as (chosen, rejected): the answer the annotator preferred comes first. If the scores were right, the probability of seeing all $N$ labels (independent comparisons) would be
#
# $$\prod_{i=1}^{N} \sigma\big(r_{c,i} - r_{r,i}\big).$$
#
# **Maximum likelihood** picks the scores that make the observed labels most probable. Taking $-\log$ and averaging over pairs turns the product into the loss every reward model in this course (and in InstructGPT, MOSS-RLHF and trl's `RewardTrainer`) minimises:
#
# $$\mathcal{L}(r) \;=\; -\frac{1}{N} \sum_{i=1}^{N} \log \sigma\big(r_{c,i} - r_{r,i}\big).$$
#
# It is the binary cross-entropy of a classifier that predicts "chosen beats rejected" from the score gap $d_i = r_{c,i} - r_{r,i}$.
#
# **Mind the numerics.** When the gap is very negative, $\sigma(d)$ underflows to exactly 0 in floating point and $\log 0 = -\infty$:

# %%
d = torch.tensor([-5.0, -50.0, -200.0])
print("log(sigmoid(d)):", torch.log(torch.sigmoid(d)))
print("F.logsigmoid(d):", F.logsigmoid(d))


# %% [markdown]
# **What you should see:** `-5.0067, -50.0000, -inf` from the naive formula and `-5.0067, -50.0000, -200.0000` from `F.logsigmoid`, on every machine (float32 underflows to 0 below about $e^{-103}$, so $\sigma(-200)$ is 0).

# %% [markdown]
# `F.logsigmoid` computes $\log \sigma(d) = -\log(1 + e^{-d})$ without ever forming the tiny number. A reward model in training does meet large negative gaps: a pair it ranks very wrongly.
#
# ### Exercise 2: the Bradley–Terry loss
#
# `r_chosen` and `r_rejected` are 1-D tensors of rewards, one entry per pair. Return the mean loss above as a 0-dimensional tensor. The check compares your values *and gradients* with the library's `bradley_terry_loss`, on random rewards that include very large gaps.

# %%
def bt_loss(r_chosen, r_rejected):
    """Mean over pairs of -log sigmoid(r_chosen - r_rejected)."""
    ### BEGIN SOLUTION
    return -F.logsigmoid(r_chosen - r_rejected).mean()
    ### END SOLUTION


# %%
checks.check_bradley_terry_loss(bt_loss)

# %% [markdown]
# The experiments below use the library's loss, `moss_lab.reward.bradley_terry_loss` (the one lab 03 trains with, and the one your `bt_loss` was checked against), imported only now that the exercise is behind us.

# %%
from moss_lab.reward import bradley_terry_loss  # noqa: E402

# %% [markdown]
# ## 3. Maximum likelihood: recover hidden scores from comparisons
#
# Five answers, A to E, have **true scores** that we hide from the fit. An annotator compares random pairs of them 1000 times, drawing each verdict from Bradley–Terry. From the verdicts alone, can we get the scores back?

# %%
names = ["A", "B", "C", "D", "E"]
true_scores = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.5])


def simulate_comparisons(scores, n, temperature=1.0, seed=0):
    """n Bradley-Terry verdicts on random pairs: (chosen index, rejected index) tensors.

    The annotator sees scores / temperature: a higher temperature is a noisier annotator.
    """
    gen = torch.Generator().manual_seed(seed)
    i = torch.randint(0, len(scores), (n,), generator=gen)
    j = (i + torch.randint(1, len(scores), (n,), generator=gen)) % len(scores)  # j != i
    i_wins = torch.rand(n, generator=gen) < torch.sigmoid((scores[i] - scores[j]) / temperature)
    return torch.where(i_wins, i, j), torch.where(i_wins, j, i)


chosen, rejected = simulate_comparisons(true_scores, 1000)
wins = torch.bincount(chosen, minlength=5)
games = wins + torch.bincount(rejected, minlength=5)
for k, name in enumerate(names):
    print(f"{name}: true score {true_scores[k]:+.1f}, won {wins[k]:3d} of {games[k]:3d} comparisons")


# %% [markdown]
# **What you should see** (comparison seeds 0-4; the notebook uses 0): each answer takes part in 366-427 of the 1000 comparisons; A wins 84-87% of its comparisons, E only 10-13%, and the win counts fall from A to E.

# %% [markdown]
# Now the fit. The "model" is just a table: one learnable score per answer. We minimise the Bradley–Terry loss over the 1000 pairs with plain gradient descent (the library's `bradley_terry_loss`, the same function you wrote above).

# %%
def fit_scores(chosen, rejected, n_items, steps=100, lr=2.0):
    """Maximum-likelihood Bradley-Terry scores by gradient descent; (scores, losses)."""
    r = torch.zeros(n_items, requires_grad=True)
    opt = torch.optim.SGD([r], lr=lr)
    losses = []
    for _ in range(steps):
        loss = bradley_terry_loss(r[chosen], r[rejected])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return r.detach(), losses


fitted, losses = fit_scores(chosen, rejected, len(names))
for k, name in enumerate(names):
    print(f"{name}: true {true_scores[k]:+.2f}   fitted {fitted[k]:+.2f}   "
          f"difference {fitted[k] - true_scores[k]:+.2f}")

# %% [markdown]
# **What you should see** (seeds 0-4): every difference between $-0.14$ and $-0.58$, and their average exactly $-0.40$ for every seed, the mean of the true scores (the fit keeps the mean score at 0, as section 4 explains).

# %% [markdown]
# Look at the last column: every fitted score is lower than the true one, by **roughly the same amount** (about 0.4, give or take the sampling noise of 1000 verdicts). The fit found the true scores *up to a constant*. Subtract the mean from both and they agree, within the noise of 1000 random verdicts:

# %%
centered = lambda x: x - x.mean()  # noqa: E731

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
ax1.plot(losses)
ax1.set_xlabel("gradient step")
ax1.set_ylabel("Bradley–Terry loss")
ax1.set_title("The fit converges")
x = torch.arange(len(names))
ax2.bar(x - 0.2, centered(true_scores), width=0.4, label="true (centred)")
ax2.bar(x + 0.2, centered(fitted), width=0.4, label="fitted (centred)")
ax2.set_xticks(x, names)
ax2.set_ylabel("score")
ax2.set_title("Maximum likelihood recovers the scores")
ax2.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# **What you should see** (seeds 0-4): the loss falls from $\log 2 = 0.693$ to 0.445-0.480, within 0.015 of its final value after 10 steps and flat after about 30. The centred bars match to within 0.05-0.26 (the largest gap of the five, per seed).

# %% [markdown]
# ## 4. Why only differences matter
#
# Add the same constant $c$ to every score. Every gap stays the same, so every probability, and the loss, stays the same:
#
# $$\sigma\big((r_A + c) - (r_B + c)\big) = \sigma(r_A - r_B).$$

# %%
for c in [0.0, 5.0, -100.0]:
    print(f"shift c = {c:+7.1f}: loss = {bradley_terry_loss((fitted + c)[chosen], (fitted + c)[rejected]):.6f}")

# %% [markdown]
# **What you should see:** three equal losses, the fit's final loss (0.445-0.480 over seeds 0-4); at $c = -100$ the sixth decimal may differ by 1 (float32 rounding).

# %% [markdown]
# So the loss is perfectly **flat** along the direction "add $c$ to everything", and comparisons can never tell us where zero is. Our fit started at all zeros, and each comparison pushes the winner up and the loser down by the same amount, so the mean score stayed at 0 — while the true scores average 0.4. That was the constant offset above.
#
# Below: the loss as we move away from the fitted scores along the flat direction (all scores $+c$) and along a direction that changes a gap (only A's score $+c$).

# %%
cs = torch.linspace(-3, 3, 61)
shift_all = [bradley_terry_loss((fitted + c)[chosen], (fitted + c)[rejected]).item() for c in cs]
bump_a = fitted.clone().unsqueeze(0).repeat(len(cs), 1)
bump_a[:, 0] += cs
shift_one = [bradley_terry_loss(r[chosen], r[rejected]).item() for r in bump_a]
plt.figure(figsize=(5.5, 3.4))
plt.plot(cs, shift_all, label="all scores + c  (flat)")
plt.plot(cs, shift_one, label="only A's score + c")
plt.xlabel("c")
plt.ylabel("Bradley–Terry loss")
plt.title("Comparisons pin down gaps, not levels")
plt.legend()
plt.show()

# %% [markdown]
# **What you should see** (seeds 0-4): a perfectly flat line at the fit's loss, and a valley with its bottom at $c = 0$ on that same line, rising to 0.73-0.79 at $c = -3$ and 0.54-0.59 at $c = +3$.

# %% [markdown]
# **What this means for a reward model.** A reward model's absolute level is arbitrary: two reward models trained with different seeds can rank every answer the same way and still differ by an offset. That is why PPO normalises rewards (one of the PPO-max tricks of MOSS-RLHF, lab 07), and why trl's `RewardTrainer` offers a `center_rewards_coefficient` that pulls the mean reward towards 0.
#
# **The scale, though, is not arbitrary.** The gap between two scores is fixed by how *often* one wins — and that depends on how noisy the annotator is. Let an annotator with temperature $\tau = 2$ (it sees $r / 2$) compare the same five answers:

# %%
for tau in [0.5, 1.0, 2.0]:
    c_tau, r_tau = simulate_comparisons(true_scores, 2000, temperature=tau, seed=1)
    fit_tau, _ = fit_scores(c_tau, r_tau, len(names))
    spread = (fit_tau.max() - fit_tau.min()).item()
    print(f"annotator temperature {tau}: fitted A-E spread {spread:4.2f}   "
          f"(true spread {(true_scores.max() - true_scores.min()).item():.1f}, "
          f"divided by the temperature: {3.5 / tau:.2f})")


# %% [markdown]
# **What you should see** (comparison seeds 1-5; the notebook uses 1): spreads of 6.3-6.9 at temperature 0.5, 3.3-3.6 at 1.0 and 1.58-1.70 at 2.0, close to $3.5/\tau$ (7.00, 3.50, 1.75) and mostly a little below it.

# %% [markdown]
# A noisier annotator produces flatter scores: the fit cannot tell "these answers are close" from "the annotator is noisy". The ranking is still right. The same holds for reward models trained on noisy human labels: their rewards are compressed, and their accuracy is bounded by the labels' own consistency.
#
# ## 5. The gradient, by hand
#
# Write $d_i = r_{c,i} - r_{r,i}$. Since $\frac{d}{dx}\log\sigma(x) = 1 - \sigma(x) = \sigma(-x)$,
#
# $$\frac{\partial \mathcal{L}}{\partial r_{c,i}} = -\frac{1}{N}\,\sigma(-d_i), \qquad \frac{\partial \mathcal{L}}{\partial r_{r,i}} = +\frac{1}{N}\,\sigma(-d_i).$$
#
# Gradient descent moves $r_c$ up and $r_r$ down by the same amount, $\sigma(-d_i)$ per pair: the probability the model currently gives to the *wrong* order. (That equal-and-opposite push is why the mean score never moved in section 4.)
#
# ### Exercise 3: the gradient of the Bradley–Terry loss
#
# Return the pair `(grad_chosen, grad_rejected)`: two tensors shaped like the inputs, the derivatives of the **mean** loss. No autograd: use the formula. The check compares them with autograd on the library's loss.

# %%
def bt_loss_gradient(r_chosen, r_rejected):
    """(dL/dr_chosen, dL/dr_rejected) of L = mean(-log sigmoid(r_chosen - r_rejected))."""
    ### BEGIN SOLUTION
    weight = torch.sigmoid(r_rejected - r_chosen) / len(r_chosen)
    return -weight, weight
    ### END SOLUTION


# %%
checks.check_bt_gradient(bt_loss_gradient)

# %% [markdown]
# The size of the push, $\sigma(-d)$, tells us how the model learns from each pair:

# %%
d = torch.linspace(-6, 6, 200)
plt.figure(figsize=(5.5, 3.4))
plt.plot(d, torch.sigmoid(-d))
plt.axvspan(-6, 0, color="tab:red", alpha=0.08, label="ranked wrongly ($d < 0$)")
plt.axvspan(0, 6, color="tab:green", alpha=0.08, label="ranked rightly ($d > 0$)")
plt.xlabel("gap $d = r_c - r_r$")
plt.ylabel("push on this pair, $\\sigma(-d)$")
plt.title("The loss works hardest on the pairs it gets wrong")
plt.legend()
plt.show()

# %% [markdown]
# **What you should see:** a falling S-curve, 0.9975 at $d = -6$, 0.5 at $d = 0$ and 0.0025 at $d = 6$ (exact values of $\sigma(-d)$; no randomness).

# %% [markdown]
# - A pair already ranked right by a wide gap gets almost no push: the model stops caring about it.
# - A pair ranked wrong gets a push close to the maximum, 1 — **however wrong the label might be**.
#
# That second point is the trouble with noisy labels. A mislabelled pair (the annotator picked the worse answer) looks to the model like a pair it ranks wrongly, and it keeps pulling, epoch after epoch, at full strength. MOSS-RLHF Part II proposes remedies, which lab 03 tries out:
#
# - **label smoothing** ($\varepsilon$): never trust a label completely, $\;\mathcal{L}_\varepsilon = -(1-\varepsilon)\log\sigma(d) - \varepsilon\log\sigma(-d)$;
# - **a margin** ($m$): ask for a clear gap on pairs that are clearly different, $\;-\log\sigma(d - m)$;
# - **flipping** the labels of the pairs the model most strongly disagrees with.
#
# Here is what the first two do to the loss as a function of the gap:

# %%
d = torch.linspace(-6, 8, 300)
plt.figure(figsize=(5.5, 3.4))
plt.plot(d, [bradley_terry_loss(x.view(1), torch.zeros(1)).item() for x in d], label="plain: $-\\log\\sigma(d)$")
plt.plot(d, [bradley_terry_loss(x.view(1), torch.zeros(1), label_smoothing=0.1).item() for x in d],
         label="label smoothing $\\varepsilon = 0.1$")
plt.plot(d, [bradley_terry_loss(x.view(1), torch.zeros(1), margin=2.0).item() for x in d], label="margin $m = 2$")
plt.axvline(math.log(0.9 / 0.1), color="tab:orange", ls=":", lw=1)
plt.xlabel("gap $d = r_c - r_r$")
plt.ylabel("loss on one pair")
plt.ylim(0, 6)
plt.title("The Part II remedies reshape the loss")
plt.legend()
plt.show()

# %% [markdown]
# **What you should see** (exact values, no randomness): at $d = 0$ the plain and the smoothed loss are both $\log 2 = 0.693$ and the margin loss is 2.13; the smoothed loss bottoms out at 0.325 at the dotted line $d \approx 2.20$ and climbs back to 0.80 at $d = 8$, where the plain loss is 0.0003; the margin loss reaches 0.693 at $d = 2$.

# %% [markdown]
# With label smoothing the loss has a minimum at a finite gap, $d^* = \log\frac{1-\varepsilon}{\varepsilon} \approx 2.2$ for $\varepsilon = 0.1$ (dotted line): the model stops pushing pairs apart beyond that, and it no longer treats any single label as certain. The margin shifts the curve right: a gap below $m$ still costs loss.
#
# ## Summary
#
# - Bradley–Terry: $P(A \succ B) = \sigma(r_A - r_B)$. The reward of an answer is its score in this model.
# - Maximum likelihood gives the loss $-\frac1N \sum \log\sigma(r_c - r_r)$; compute it with `logsigmoid`.
# - Comparisons determine score **gaps**, never the level: rewards are defined up to a constant, hence reward normalisation in PPO. The **scale** reflects how consistent the labels are.
# - The gradient pushes each pair by $\sigma(-d)$, the probability of the wrong order: noisy labels keep pulling at full strength, which the Part II remedies soften.
#
# **Next:** lab 03 replaces the table of five scores with a transformer that scores any answer, $r_\phi(x, y)$, and trains it on thousands of toy-world comparisons.

# %% [markdown]
# ## Recap quiz
#
# Answer in the cell below (a letter, or a number where a number is asked) and run it: each answer is checked, and a wrong one gets a hint.
#
# 1. Bradley-Terry: with $r_A = 2$ and $r_B = 0$, what is $P(A \succ B)$?
#
# 2. Add 10 to the score of every answer. What changes?
#    - (a) Every probability $P(A \succ B)$
#    - (b) Nothing: only differences of scores enter the model
#    - (c) The loss doubles
#    - (d) Only the gradient
#
# 3. Why is the loss computed as `-F.logsigmoid(d)` and not `-torch.log(torch.sigmoid(d))`?
#    - (a) It is faster, with the same values
#    - (b) sigmoid is not differentiable
#    - (c) For a very negative gap, sigmoid(d) underflows to 0 and log 0 = -inf
#    - (d) logsigmoid adds label smoothing
#
# 4. The loss pushes the scores of one pair apart with strength $\sigma(-d)$, $d = r_c - r_r$. Which pairs are pushed hardest?
#    - (a) Pairs the model already orders right by a wide gap
#    - (b) Pairs with $d = 0$, always
#    - (c) Every pair equally
#    - (d) Pairs the model orders the wrong way (very negative $d$), mislabelled ones included
#
# 5. With label smoothing $\varepsilon = 0.1$, the loss of one pair is smallest at a finite gap $d^*$. What is $d^*$?

# %%
from moss_lab.quiz import score_quiz

# your answers: a letter ("a" to "d"), or a number where a number is asked
quiz_answers = {1: None, 2: None, 3: None, 4: None, 5: None}
### BEGIN SOLUTION
quiz_answers = {1: 0.881, 2: "b", 3: "c", 4: "d", 5: 2.197}
### END SOLUTION
score_quiz("02", quiz_answers)
