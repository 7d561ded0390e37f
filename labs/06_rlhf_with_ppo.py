# %% [markdown]
# # Lab 06 - RLHF with PPO, end to end
#
# Everything so far comes together: the toy base model (lab 01) is the **policy**, the
# reward model trained on simulated human preferences (labs 02-03) is the **reward**, and
# PPO (labs 04-05) does the fine-tuning, with a **KL penalty** that keeps the policy close
# to the model it started from. This is step 3 of InstructGPT and MOSS-RLHF, at a scale
# that runs on a laptop in well under a minute.
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

from moss_lab import toyworld
from moss_lab.models import load_policy
from moss_lab.ppo import PPOConfig, gae, kl_estimate, shape_rewards, train_ppo, whiten
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
# `load_policy("toy")` gives the toy base model (built once and cached).
# `toy_reward_model_dir()` gives a reward model trained, as in lab 03, on 4000 pairs of
# the base model's own samples labelled by a noisy simulated annotator (it is trained on
# first use, about a minute, then cached). How good is it? We label 300 fresh pairs and
# measure how often it orders them like the gold score.

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
# Around three out of four pairs ordered right: a useful but imperfect proxy, like every
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
# ## 3. One iteration, by hand
#
# Before handing everything to `train_ppo`, let us run phases 1 and 2 of one iteration
# ourselves with the library's pieces, to see the tensors of labs 04-05 in the wild.

# %%
reference = copy.deepcopy(policy).eval()           # frozen anchor of the KL penalty
critic = copy.deepcopy(reward_model)                # PPO-max: critic starts as the RM
reward_fn = lambda prompts, responses: score(reward_model, rm_tokenizer, prompts, responses)

batch = rollout(policy, reference, critic, reward_fn, tokenizer,
                toyworld.sample_prompts(8, seed=7), max_new_tokens=20,
                generator=torch.Generator().manual_seed(0))
print("response_ids", tuple(batch.response_ids.shape), " mask", tuple(batch.mask.shape),
      " scores", tuple(batch.scores.shape))

rewards, kl = shape_rewards(batch.scores, batch.logp, batch.ref_logp, batch.mask, kl_coef=0.05)
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
# At the start the policy *is* the reference, so `logp == ref_logp`, the KL penalty is
# zero and the only reward is the score on the last token (`<eos>`). (The trainer also
# normalises and clips the score first, PPO-max; skipped here.) The critic is the reward
# model's network read at every prefix: before any training it already has a rough idea of
# how good the response looks so far. GAE ($\gamma = 1$, $\lambda = 0.95$) carries the
# score back to every token, through the critic's values; then the advantages are whitened
# across the batch.
#
# ## 4. The full run, with live curves
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
# Read the curves together:
#
# * the RM score rises, and so does the **gold** score: on this reward model, with this
#   KL penalty, optimising the proxy really improves the answers;
# * the **KL** grows from 0: the price paid for the gain, measured in nats per response;
# * **entropy** falls: the policy commits to the kind of answer the reward model likes;
# * **length** moves towards what scores best (short answers with a fact or two here).
#
# ## 5. After: the same prompts

# %%
after = evaluate(result.policy, "after PPO")
print(f"\nRM score {before['rm']:+.2f} -> {after['rm']:+.2f};   "
      f"gold {before['gold']:+.2f} -> {after['gold']:+.2f}")

# %% [markdown]
# ## 6. How far did it move? Three KL estimators
#
# The KL penalty needs $\mathrm{KL}(\pi\,\|\,\pi_\text{ref})$ per token, from the one token
# that was sampled. `moss_lab.ppo.kl_estimate` offers Schulman's three estimators, with
# $\log r = \log\pi_\text{ref} - \log\pi$ on the sampled token:
# $k_1 = -\log r$ (unbiased, noisy, can be negative), $k_2 = \tfrac12(\log r)^2$ (biased,
# $\ge 0$), $k_3 = (r - 1) - \log r$ (unbiased and $\ge 0$). With the full distributions
# at hand we can also compute the exact per-token KL and compare.

# %%
trained = result.policy.eval()
batch = rollout(trained, reference, critic, reward_fn, tokenizer,
                toyworld.sample_prompts(64, seed=99), max_new_tokens=20,
                generator=torch.Generator().manual_seed(1))
m = batch.mask.bool()
with torch.no_grad():  # exact KL at each response position, from the full distributions
    inputs, P = batch.inputs(), batch.prompt_ids.shape[1]
    logq = torch.log_softmax(trained(**inputs).logits[:, P - 1:-1].float(), -1)
    logq_ref = torch.log_softmax(reference(**inputs).logits[:, P - 1:-1].float(), -1)
    exact = (logq.exp() * (logq - logq_ref)).sum(-1)

print(f"exact KL per token: mean {exact[m].mean():.3f}")
fig, ax = plt.subplots(figsize=(7, 3))
for kind in ("k1", "k2", "k3"):
    k = kl_estimate(batch.logp, batch.ref_logp, kind)[m]
    print(f"{kind}: mean {k.mean():.3f}   std {k.std():.3f}   share < 0: {(k < 0).float().mean():.2f}")
    ax.hist(k.clamp(-2, 4).numpy(), bins=60, histtype="step", lw=1.5, label=kind)
ax.axvline(float(exact[m].mean()), color="k", ls="--", label="exact mean")
ax.set_xlabel("per-token KL estimate (clamped to [-2, 4])")
ax.set_ylabel("tokens (log scale)")
ax.set_yscale("log")
ax.legend()
plt.show()

# %% [markdown]
# Compare the three means with the exact one. $k_1$ is unbiased but negative on many
# tokens; $k_2$ is always positive but biased upwards once the policy has moved; $k_3$ is
# unbiased and never negative, but its rare large values (tokens the reference likes much
# more than the policy) make its average over a finite batch come out low. The PPO
# reward here uses $k_1$ summed over the response (`kl_estimator` in `PPOConfig`), like
# MOSS-RLHF and InstructGPT; losses that must stay non-negative prefer $k_3$ (GRPO does).
#
# ## 7. The run folder
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
# **Try it yourself** (each run takes seconds):
#
# * `kl_coef=0.2` or `kl_coef=0.0`: how do the KL and gold curves change? (Lab 08 looks
#   closely at $\beta = 0$.)
# * `kl_target=3.0`: an adaptive $\beta$ that steers the KL towards a target (watch
#   `objective/kl_coef` in the metrics).
# * `train_ppo(config, reward_model="gold")`: PPO on the oracle itself, an upper bound
#   no real pipeline has.
# * From a shell: `moss-lab ppo --iterations 30` runs the same loop with a progress bar.
#
# Next: lab 07 switches the PPO-max tricks off one at a time.
