"""Checkers for the lab exercises (Spinning Up style).

An exercise asks you to write a function; its checker calls your function and a
reference on the same random inputs and prints one clear verdict:

    ✅ Correct: matches the reference on 20 random inputs.
    ❌ Mismatch on input #3 ...: expected ..., got ...
    ⚠️ Not implemented yet: ...

A checker never raises (a notebook keeps running) and returns True only when every
trial matches. `check_function` is the generic engine; the named checkers below
(`check_bradley_terry_loss`, `check_bt_gradient`, ...) fix the reference, the random
inputs and a hint for each exercise. To add one for a new lab, write a `make_inputs`
(a torch.Generator in, the positional arguments out), pick the reference, and call
`check_function`: see the lab sections at the end of this file.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

DEFAULT_TRIALS = 20


# ---------------------------------------------------------------------------------------
# The generic engine
# ---------------------------------------------------------------------------------------
def check_function(learner_fn: Callable, reference_fn: Callable,
                   make_inputs: Callable[[torch.Generator], tuple | dict],
                   n_trials: int = DEFAULT_TRIALS, atol: float = 1e-5, rtol: float = 1e-4,
                   compare_grads: bool = False, grad_wrt: tuple | None = None,
                   hint: str | None = None, seed: int = 0) -> bool:
    """Compare `learner_fn` with `reference_fn` on `n_trials` random inputs; print a verdict.

    make_inputs(gen) returns the arguments of one trial: a tuple (positional) or a dict
    (keyword). Outputs may be tensors, numbers, bools, or tuples/lists of these; they
    must match in shape and agree within atol + rtol * |expected|.

    With compare_grads=True, every floating-point tensor argument also gets
    requires_grad, and d(sum of output)/d(argument) must match too: this catches a
    function whose values are right but that breaks the gradient (.item(), .detach(),
    a Python loop over floats...). grad_wrt (positions or keyword names) limits that to
    the arguments a loss is differentiated by in training: the policy's log-probabilities,
    not the rollout data (old log-probabilities, advantages), which a correct answer may
    detach.
    """
    name = getattr(learner_fn, "__name__", "your function")
    gen = torch.Generator().manual_seed(seed)
    for trial in range(n_trials):
        inputs = make_inputs(gen)
        expected, exp_grads = _call(reference_fn, inputs, compare_grads, grad_wrt)
        try:
            got, got_grads = _call(learner_fn, inputs, compare_grads, grad_wrt)
        except NotImplementedError:
            print(f"⚠️ Not implemented yet: `{name}` still raises NotImplementedError. "
                  f"Replace that line with your code, then run this cell again.")
            return False
        except Exception as err:  # the learner's bug is reported, never raised
            print(f"❌ `{name}` raised {type(err).__name__}: {err}\n"
                  f"   on input #{trial}: {_show_inputs(inputs)}")
            return False
        problem = _compare(expected, got, atol, rtol)
        if problem is None and compare_grads:
            problem = _compare_grads(exp_grads, got_grads, inputs, atol, rtol, grad_wrt)
        if problem is not None:
            print(f"❌ Mismatch on input #{trial}: {_show_inputs(inputs)}\n   {problem}")
            if hint:
                print(f"   Hint: {hint}")
            return False
    what = "values and gradients" if compare_grads else "values"
    print(f"✅ Correct: `{name}` matches the reference ({what}) on {n_trials} random inputs.")
    return True


def _differentiated(inputs: tuple | dict, grad_wrt: tuple | None) -> list:
    """The keys (names or positions) of the arguments whose gradients are compared."""
    items = inputs.items() if isinstance(inputs, dict) else enumerate(inputs)
    return [k for k, x in items if isinstance(x, torch.Tensor) and x.is_floating_point()
            and (grad_wrt is None or k in grad_wrt)]


def _call(fn: Callable, inputs: tuple | dict, with_grads: bool, grad_wrt: tuple | None = None):
    """Run fn on fresh copies of the inputs; return (output, grads or None)."""
    args = inputs if isinstance(inputs, dict) else tuple(inputs)
    wanted = set(_differentiated(inputs, grad_wrt)) if with_grads else set()
    leaves = []

    def fresh(key, x):
        if isinstance(x, torch.Tensor):
            x = x.detach().clone()
            if key in wanted:
                x.requires_grad_(True)
                leaves.append(x)
        return x

    if isinstance(args, dict):
        args = {k: fresh(k, v) for k, v in args.items()}
        out = fn(**args)
    else:
        args = tuple(fresh(i, v) for i, v in enumerate(args))
        out = fn(*args)
    if not with_grads:
        return out, None
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        return out, "no-grad"
    grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
    return out, [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, leaves)]


def _compare(expected: Any, got: Any, atol: float, rtol: float, where: str = "") -> str | None:
    """None when got matches expected, else a sentence that says how it differs."""
    label = f"output{where}"
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"{label}: expected a tuple of {len(expected)} values, got {_show(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = _compare(e, g, atol, rtol, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if got is None:
        return f"{label}: your function returned None (did you forget `return`?)"
    if isinstance(got, (tuple, list)):
        return f"{label}: expected a single value, got a tuple of {len(got)}: {_show(got)}"
    try:
        e = torch.as_tensor(expected).detach().double()
        g = torch.as_tensor(got if not isinstance(got, torch.Tensor) else got.detach()).double()
    except (TypeError, ValueError, RuntimeError):
        return f"{label}: expected {_show(expected)}, got {_show(got)} (not a number or tensor)"
    if e.shape != g.shape:
        return (f"{label}: expected shape {tuple(e.shape)}, got shape {tuple(g.shape)} "
                f"(expected {_show(expected)}, got {_show(got)})")
    same_nan = torch.isnan(e) == torch.isnan(g)
    close = torch.isclose(e, g, rtol=rtol, atol=atol, equal_nan=True)
    if not (same_nan & close).all():
        return f"{label}: expected {_show(expected)}, got {_show(got)}"
    return None


def _compare_grads(expected, got, inputs, atol, rtol, grad_wrt=None) -> str | None:
    if expected is None or isinstance(expected, str):  # the reference has no gradient either
        return None
    if isinstance(got, str):
        return ("your output carries no gradient: use torch operations all the way "
                "(no .item(), .detach(), .numpy() or math.* on tensors)")
    names = [k if isinstance(k, str) else f"argument {k}"
             for k in _differentiated(inputs, grad_wrt)]
    for name, e, g in zip(names, expected, got):
        problem = _compare(e, g, atol, rtol)
        if problem:
            return f"gradient with respect to {name}: " + problem.replace("output: ", "")
    return None


def _show(x: Any, n: int = 6) -> str:
    """A short, readable rendering of a value (first few entries of a tensor)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dim() == 0:
            return f"{x.item():.6g}"
        flat = x.flatten().tolist()
        items = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in flat[:n])
        more = ", ..." if len(flat) > n else ""
        return f"tensor([{items}{more}]) of shape {tuple(x.shape)}"
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, (tuple, list)):
        return "(" + ", ".join(_show(v, n) for v in x) + ")"
    return repr(x)


def _show_inputs(inputs: tuple | dict) -> str:
    if isinstance(inputs, dict):
        return ", ".join(f"{k}={_show(v)}" for k, v in inputs.items())
    return ", ".join(_show(v) for v in inputs)


# ---------------------------------------------------------------------------------------
# Random inputs shared by several checkers
# ---------------------------------------------------------------------------------------
def random_reward_pairs(gen: torch.Generator, scales=(0.1, 1.0, 3.0, 10.0, 50.0)):
    """Rewards (r_chosen, r_rejected) for a batch of 1-16 pairs, at a random scale.

    The largest scale puts |r_c - r_r| beyond 100, where a naive log(sigmoid(.))
    underflows to log(0) = -inf: the loss checks expect a numerically stable answer.
    """
    n = int(torch.randint(1, 17, (1,), generator=gen))
    scale = scales[int(torch.randint(0, len(scales), (1,), generator=gen))]
    return (torch.randn(n, generator=gen) * scale, torch.randn(n, generator=gen) * scale)


def moderate_reward_pairs(gen: torch.Generator):
    """Like random_reward_pairs, with |r| of a few units (no overflow questions)."""
    return random_reward_pairs(gen, scales=(0.1, 1.0, 3.0))


# ---------------------------------------------------------------------------------------
# Lab 01: the simulated annotator
# ---------------------------------------------------------------------------------------
def annotator_prob_reference(gold_a, gold_b, len_a, len_b, noise, length_bias):
    """P(A preferred) = sigmoid((g_A - g_B + bias * (len_A - len_B)) / noise), noise > 0.

    The formula of `moss_lab.toyworld.SimulatedAnnotator.prob_a`, on tensors
    (tests/test_checks.py ties the two together).
    """
    return torch.sigmoid((gold_a - gold_b + length_bias * (len_a - len_b)) / noise)


def _annotator_inputs(gen: torch.Generator):
    n = int(torch.randint(1, 9, (1,), generator=gen))
    gold_a, gold_b = torch.randn(n, generator=gen) * 2, torch.randn(n, generator=gen) * 2
    len_a = torch.randint(2, 40, (n,), generator=gen).float()
    len_b = torch.randint(2, 40, (n,), generator=gen).float()
    noise = float(torch.empty(1).uniform_(0.1, 4.0, generator=gen))
    bias = float(torch.empty(1).uniform_(0.0, 0.5, generator=gen))
    return gold_a, gold_b, len_a, len_b, noise, bias


def check_annotator_prob(fn: Callable) -> bool:
    """Lab 01 exercise: fn(gold_a, gold_b, len_a, len_b, noise, length_bias) -> P(A preferred)."""
    return check_function(
        fn, annotator_prob_reference, _annotator_inputs,
        hint="divide the whole difference (gold gap + bias * length gap) by the noise, "
             "then apply torch.sigmoid.")


# ---------------------------------------------------------------------------------------
# Lab 02: Bradley-Terry
# ---------------------------------------------------------------------------------------
def bt_probability_reference(r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
    """P(A > B) = sigmoid(r_A - r_B)."""
    return torch.sigmoid(r_a - r_b)


def check_bt_probability(fn: Callable) -> bool:
    """Lab 02 exercise: fn(r_a, r_b) -> P(A preferred over B), elementwise."""
    return check_function(fn, bt_probability_reference, moderate_reward_pairs,
                          compare_grads=True,
                          hint="P(A > B) = sigmoid(r_A - r_B); torch.sigmoid is your friend.")


def _library_bt_loss(r_chosen, r_rejected, **kwargs):
    from .reward import bradley_terry_loss  # imported late: lab 01 must not need it

    return bradley_terry_loss(r_chosen, r_rejected, **kwargs)


def check_bradley_terry_loss(fn: Callable) -> bool:
    """Lab 02 exercise: fn(r_chosen, r_rejected) -> mean of -log sigmoid(r_c - r_r)."""
    return check_function(
        fn, _library_bt_loss, random_reward_pairs, compare_grads=True,
        hint="mean over pairs of -log sigmoid(r_c - r_r). For large gaps log(sigmoid(x)) "
             "underflows to -inf: F.logsigmoid(x) computes it stably.")


def bt_gradient_reference(r_chosen: torch.Tensor, r_rejected: torch.Tensor):
    """(dL/dr_chosen, dL/dr_rejected) of the mean BT loss, by autograd on the library loss."""
    r_c = r_chosen.detach().clone().requires_grad_(True)
    r_r = r_rejected.detach().clone().requires_grad_(True)
    grads = torch.autograd.grad(_library_bt_loss(r_c, r_r), [r_c, r_r])
    return grads[0], grads[1]


def check_bt_gradient(fn: Callable) -> bool:
    """Lab 02 exercise: fn(r_chosen, r_rejected) -> (dL/dr_chosen, dL/dr_rejected), by hand."""
    return check_function(
        fn, bt_gradient_reference, random_reward_pairs,
        hint="with d = r_c - r_r and N pairs, dL/dr_c = -sigmoid(-d) / N and "
             "dL/dr_r = +sigmoid(-d) / N. Don't forget the 1/N from the mean.")


# ---------------------------------------------------------------------------------------
# Lab 03: reward-model metrics and the Part II remedies
# ---------------------------------------------------------------------------------------
def pairwise_accuracy_reference(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Fraction of pairs the reward model ranks like the label: mean of [r_c > r_r]."""
    return (r_chosen > r_rejected).float().mean().item()


def _accuracy_inputs(gen: torch.Generator):
    r_c, r_r = random_reward_pairs(gen)
    tie = torch.rand(len(r_c), generator=gen) < 0.2  # ties count as wrong: r_c must beat r_r
    return r_c, torch.where(tie, r_c, r_r)


def check_pairwise_accuracy(fn: Callable) -> bool:
    """Lab 03 exercise: fn(r_chosen, r_rejected) -> accuracy (a float in [0, 1])."""
    return check_function(
        fn, pairwise_accuracy_reference, _accuracy_inputs,
        hint="count the pairs where r_chosen > r_rejected (strictly: a tie is not a win) "
             "and divide by the number of pairs.")


def _smoothing_inputs(gen: torch.Generator):
    r_c, r_r = random_reward_pairs(gen)
    eps = float(torch.empty(1).uniform_(0.0, 0.3, generator=gen))
    return r_c, r_r, eps


def check_label_smoothing_loss(fn: Callable) -> bool:
    """Lab 03 exercise: fn(r_chosen, r_rejected, eps) -> the label-smoothed BT loss.

    L = mean of -(1 - eps) log sigmoid(d) - eps log sigmoid(-d), d = r_c - r_r.
    """
    return check_function(
        fn, lambda r_c, r_r, eps: _library_bt_loss(r_c, r_r, label_smoothing=eps),
        _smoothing_inputs, compare_grads=True,
        hint="the label says 'chosen wins' with probability 1 - eps and 'rejected wins' "
             "with probability eps: -(1 - eps) * logsigmoid(d) - eps * logsigmoid(-d), "
             "averaged over pairs.")


def _margin_inputs(gen: torch.Generator):
    r_c, r_r = random_reward_pairs(gen)
    return r_c, r_r, torch.rand(len(r_c), generator=gen) * 2


def check_margin_loss(fn: Callable) -> bool:
    """Lab 03 exercise: fn(r_chosen, r_rejected, margin) -> mean of -log sigmoid(d - margin)."""
    return check_function(
        fn, lambda r_c, r_r, m: _library_bt_loss(r_c, r_r, margin=m),
        _margin_inputs, compare_grads=True,
        hint="subtract the margin from the reward gap before the log-sigmoid: "
             "-logsigmoid(r_c - r_r - margin), averaged over pairs.")


# ---------------------------------------------------------------------------------------
# Masked, ragged batches (labs 04-08)
# ---------------------------------------------------------------------------------------
def ragged_mask(gen: torch.Generator, batch: int, T: int, dtype=torch.float32) -> torch.Tensor:
    """A (batch, T) mask that is 1 on a prefix of each row: a batch of responses of lengths
    1..T padded to T. Half of the time every row is full (the unmasked case); otherwise the
    rows have random lengths, one of them 1 when batch > 1 (the score and the last value
    sit at column 0)."""
    if torch.rand(1, generator=gen) < 0.5:
        return torch.ones(batch, T, dtype=dtype)
    lengths = torch.randint(1, T + 1, (batch,), generator=gen)
    if batch > 1:
        lengths[0] = 1
    return (torch.arange(T)[None, :] < lengths[:, None]).to(dtype)


def _batch_shape(gen: torch.Generator, max_batch: int = 5, max_T: int = 13) -> tuple[int, int]:
    return (int(torch.randint(1, max_batch, (1,), generator=gen)),
            int(torch.randint(1, max_T, (1,), generator=gen)))


def _pick(gen: torch.Generator, choices: tuple):
    return choices[int(torch.randint(0, len(choices), (1,), generator=gen))]


def _last_index(mask: torch.Tensor) -> torch.Tensor:
    """The column of each row's last real token."""
    return (mask.sum(dim=1).long() - 1).clamp(min=0)


def use_if_passed(learner_fn: Callable, passed: bool, library_fn: Callable) -> Callable:
    """The labs' rule for the code after an exercise: it runs on your function only once
    its check passed; until then on the library's, with a note that says so."""
    if passed:
        return learner_fn
    name = getattr(learner_fn, "__name__", "your function")
    print(f"ℹ️ `{name}` has not passed its check yet: the cells below use the library's "
          f"version instead. Fix it, run its check again, then rerun these cells.")
    return library_fn


# ---------------------------------------------------------------------------------------
# Labs 04-05: returns, the clipped surrogate, TD errors and GAE (references: moss_lab.ppo)
# ---------------------------------------------------------------------------------------
def _episode_batch(gen: torch.Generator):
    """(rewards, mask), both (batch, T), shaped like RLHF's: small per-token terms and a
    score on each row's last real token. The padding holds nonzero junk, so an answer that
    forgets the mask shows it."""
    batch, T = _batch_shape(gen)
    mask = ragged_mask(gen, batch, T)
    rewards = torch.randn(batch, T, generator=gen) * 0.1
    rewards[torch.arange(batch), _last_index(mask)] += torch.randn(batch, generator=gen) * 2
    junk = torch.randn(batch, T, generator=gen)
    return torch.where(mask.bool(), rewards, junk), mask


def _gamma(gen: torch.Generator) -> float:
    return _pick(gen, (1.0, 0.99, 0.9, 0.5, 0.0))  # the ends (1 and 0) catch off-by-one exponents


def discounted_returns_reference(rewards, gamma, mask):
    from .ppo import discounted_returns

    return discounted_returns(rewards, gamma, mask)


def check_discounted_returns(fn: Callable) -> bool:
    """Lab 04 exercise: fn(rewards (batch, T), gamma, mask (batch, T)) -> returns-to-go G."""
    def inputs(gen):
        rewards, mask = _episode_batch(gen)
        return rewards, _gamma(gen), mask

    return check_function(
        fn, discounted_returns_reference, inputs,
        hint="go backwards: G[:, T-1] = r[:, T-1], then G[:, t] = r[:, t] + gamma * G[:, t+1]. "
             "Column t is the return from step t on, not the total return. Padding "
             "(mask 0) carries no reward: multiply the rewards by the mask first, so the "
             "return is 0 there.")


def _surrogate_inputs(gen: torch.Generator):
    batch, T = _batch_shape(gen, 5, 9)
    old_logp = -torch.rand(batch, T, generator=gen) * 3
    logp = old_logp + torch.randn(batch, T, generator=gen) * 0.3  # ratios around 1, some clipped
    advantages = torch.randn(batch, T, generator=gen)
    mask = ragged_mask(gen, batch, T, dtype=torch.long)  # an integer mask, as a reminder
    clip = _pick(gen, (0.1, 0.2, 0.3))
    return logp, old_logp, advantages, mask, clip


def clipped_surrogate_reference(logp, old_logp, advantages, mask, clip=0.2):
    from .ppo import policy_loss

    return policy_loss(logp, old_logp, advantages, mask, clip)[0]


def check_clipped_surrogate(fn: Callable) -> bool:
    """Lab 04 exercise: fn(logp, old_logp, advantages, mask, clip) -> the PPO policy loss.

    Gradients are compared with respect to logp only: old_logp and the advantages are
    rollout data, constants of the loss, and an answer may detach them.
    """
    return check_function(
        fn, clipped_surrogate_reference, _surrogate_inputs, compare_grads=True,
        grad_wrt=(0,),
        hint="ratio = exp(logp - old_logp); loss = -min(ratio * A, clamp(ratio, 1 - clip, "
             "1 + clip) * A), averaged over the tokens where mask is 1 (sum(x * mask) / "
             "sum(mask)), not over the padding.")


def _values_batch(gen: torch.Generator):
    rewards, mask = _episode_batch(gen)
    values = torch.randn(rewards.shape, generator=gen)  # junk on the padding too
    return rewards, values, mask


def td_errors_reference(rewards, values, gamma, mask):
    """delta_t = r_t + gamma * V_{t+1} - V_t on real tokens, with V = 0 after each row's last
    real token; 0 on padding: GAE with lambda = 0."""
    from .ppo import gae

    return gae(rewards, values, gamma, 0.0, mask)[0]


def check_td_errors(fn: Callable) -> bool:
    """Lab 05 exercise: fn(rewards, values, gamma, mask) -> TD errors delta (batch, T)."""
    def inputs(gen):
        rewards, values, mask = _values_batch(gen)
        return rewards, values, _gamma(gen), mask

    return check_function(
        fn, td_errors_reference, inputs,
        hint="delta[:, t] = r[:, t] + gamma * V[:, t+1] - V[:, t]; after a row's last real "
             "token the episode is over, so the next value is 0 there (multiply values and "
             "rewards by the mask before shifting), and delta is 0 on the padding.")


def gae_reference(rewards, values, gamma, lam, mask):
    from .ppo import gae

    return gae(rewards, values, gamma, lam, mask)


def check_gae(fn: Callable) -> bool:
    """Lab 05 exercise: fn(rewards, values, gamma, lam, mask) -> (advantages, returns)."""
    def inputs(gen):
        rewards, values, mask = _values_batch(gen)
        return rewards, values, _gamma(gen), _pick(gen, (1.0, 0.95, 0.5, 0.0)), mask

    return check_function(
        fn, gae_reference, inputs,
        hint="backwards: A[:, t] = delta[:, t] + gamma * lam * A[:, t+1] (A after the last "
             "token is 0); returns = A + values. On the padding both are 0: use masked "
             "deltas, and mask the values you add to get the returns.")


# ---------------------------------------------------------------------------------------
# Lab 06: the KL estimators, the per-token reward, the exact KL of two categoricals
# ---------------------------------------------------------------------------------------
def _logp_pair(gen: torch.Generator, batch: int, T: int):
    """Log-probabilities of sampled tokens under the policy and the reference."""
    logp = -torch.rand(batch, T, generator=gen) * 4
    spread = _pick(gen, (0.05, 0.5, 2.0))
    return logp, logp + torch.randn(batch, T, generator=gen) * spread


def kl_estimates_reference(logp, ref_logp):
    """(k1, k2, k3) per token, from moss_lab.ppo.kl_estimate."""
    from .ppo import kl_estimate

    return tuple(kl_estimate(logp, ref_logp, kind) for kind in ("k1", "k2", "k3"))


def check_kl_estimates(fn: Callable) -> bool:
    """Lab 06 exercise: fn(logp, ref_logp) -> (k1, k2, k3), each shaped like logp."""
    return check_function(
        fn, kl_estimates_reference, lambda gen: _logp_pair(gen, *_batch_shape(gen)),
        hint="with log_r = ref_logp - logp (reference over policy): k1 = -log_r, "
             "k2 = log_r ** 2 / 2, k3 = (exp(log_r) - 1) - log_r.")


def shape_rewards_reference(scores, logp, ref_logp, mask, kl_coef):
    from .ppo import shape_rewards

    return shape_rewards(scores, logp, ref_logp, mask, kl_coef, "k1")[0]


def _shaping_inputs(gen: torch.Generator):
    batch, T = _batch_shape(gen)
    logp, ref_logp = _logp_pair(gen, batch, T)
    mask = ragged_mask(gen, batch, T)
    scores = torch.randn(batch, generator=gen) * 2
    return scores, logp, ref_logp, mask, _pick(gen, (0.05, 0.2, 1.0))


def check_shape_rewards(fn: Callable) -> bool:
    """Lab 06 exercise: fn(scores (B,), logp, ref_logp, mask, kl_coef) -> rewards (B, T)."""
    return check_function(
        fn, shape_rewards_reference, _shaping_inputs,
        hint="rewards = -kl_coef * (logp - ref_logp) on every real token; then add each "
             "row's score on that row's last real token (column mask.sum(1) - 1, not -1: "
             "the rows have different lengths); 0 on the padding.")


def categorical_kl_reference(logits, ref_logits):
    """KL(softmax(logits) || softmax(ref_logits)) over the last axis."""
    logp, ref_logp = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
    return (logp.exp() * (logp - ref_logp)).sum(-1)


def _logits_pair(gen: torch.Generator):
    shape = (*_batch_shape(gen, 4, 6), int(torch.randint(2, 12, (1,), generator=gen)))
    scale = _pick(gen, (0.3, 1.0, 3.0, 10.0))  # 10: some probabilities near 1e-9
    return (torch.randn(shape, generator=gen) * scale, torch.randn(shape, generator=gen) * scale)


def check_categorical_kl(fn: Callable) -> bool:
    """Lab 06 exercise: fn(logits, ref_logits) -> KL(pi || ref) per position (last axis summed).

    Gradients are compared with respect to the policy's logits only.
    """
    return check_function(
        fn, categorical_kl_reference, _logits_pair, compare_grads=True, grad_wrt=(0,),
        hint="KL(pi || ref) = sum over the last axis of pi * (log pi - log ref), with pi = "
             "softmax(logits) and ref = softmax(ref_logits); torch.log_softmax gives the "
             "logs stably. Mind the direction: pi first.")


# ---------------------------------------------------------------------------------------
# Lab 07: running moments, reward normalisation and clipping, the clipped value loss
# ---------------------------------------------------------------------------------------
def moments_update_reference(mean: float, var: float, count: float, xs: torch.Tensor):
    """(mean, var, count) after RunningMoments.update(xs) from that state."""
    from .ppo import RunningMoments

    moments = RunningMoments()
    moments.mean, moments.var, moments.count = mean, var, count
    moments.update(xs)
    return moments.mean, moments.var, moments.count


def _moments_inputs(gen: torch.Generator):
    if torch.rand(1, generator=gen) < 0.25:  # a fresh RunningMoments
        mean, var, count = 0.0, 1.0, 1e-24
    else:
        mean = float(torch.randn(1, generator=gen) * 3)
        var = float(torch.rand(1, generator=gen) * 4 + 0.05)
        count = float(torch.randint(1, 500, (1,), generator=gen))
    n = int(torch.randint(1, 40, (1,), generator=gen))
    xs = torch.randn(n, generator=gen) * float(torch.rand(1, generator=gen) * 5) \
        + float(torch.randn(1, generator=gen) * 4)
    return mean, var, count, xs


def check_moments_update(fn: Callable) -> bool:
    """Lab 07 exercise: fn(mean, var, count, xs) -> (mean, var, count) after seeing xs."""
    return check_function(
        fn, moments_update_reference, _moments_inputs,
        hint="with n = len(xs), the batch's mean m_b and population variance v_b "
             "(xs.var(unbiased=False)), delta = m_b - mean and total = count + n: "
             "mean' = mean + delta * n / total; var' = (var * count + v_b * n + delta**2 * "
             "count * n / total) / total; count' = total.")


def normalise_scores_reference(scores, mean, std, clip):
    """(scores - mean) / (std + 1e-8), clipped to [-clip, clip] unless clip is None."""
    out = (scores - mean) / (std + 1e-8)
    return out if clip is None else out.clamp(-clip, clip)


def _normalise_inputs(gen: torch.Generator):
    n = int(torch.randint(1, 20, (1,), generator=gen))
    mean = float(torch.randn(1, generator=gen) * 5)
    std = float(torch.rand(1, generator=gen) * 4 + 0.1)
    scores = mean + std * torch.randn(n, generator=gen) * 3  # some land beyond the clip
    return scores, mean, std, _pick(gen, (None, 1.0, 2.0, 5.0))


def check_normalise_scores(fn: Callable) -> bool:
    """Lab 07 exercise: fn(scores, mean, std, clip) -> normalised and clipped scores."""
    return check_function(
        fn, normalise_scores_reference, _normalise_inputs,
        hint="first normalise, (scores - mean) / std (std, not the variance; add 1e-8 to it "
             "if you like), then clamp to [-clip, clip], both sides; clip=None: no clamp.")


def value_loss_reference(values, old_values, returns, mask, clip):
    from .ppo import value_loss

    return value_loss(values, old_values, returns, mask, clip)[0]


def _value_inputs(gen: torch.Generator):
    batch, T = _batch_shape(gen, 5, 9)
    old_values = torch.randn(batch, T, generator=gen)
    values = old_values + torch.randn(batch, T, generator=gen) * 0.3  # some moved past the clip
    returns = old_values + torch.randn(batch, T, generator=gen)
    return values, old_values, returns, ragged_mask(gen, batch, T), _pick(gen, (0.1, 0.2, 0.5))


def check_value_loss(fn: Callable) -> bool:
    """Lab 07 exercise: fn(values, old_values, returns, mask, clip) -> the clipped value loss.

    Gradients are compared with respect to values only (old_values and returns are
    rollout data).
    """
    return check_function(
        fn, value_loss_reference, _value_inputs, compare_grads=True, grad_wrt=(0,),
        hint="V_clip = old_values + clamp(values - old_values, -clip, clip); loss = 0.5 * "
             "masked mean of max((values - returns)**2, (V_clip - returns)**2): the max "
             "(the pessimistic one), halved, averaged over the real tokens only.")


# ---------------------------------------------------------------------------------------
# Lab 08: the KL of a response, the adaptive KL controller, Gao et al.'s fit
# ---------------------------------------------------------------------------------------
def response_kl_reference(logp, ref_logp, mask):
    """Sum over each row's real tokens of k1 = logp - ref_logp: KL per response (B,)."""
    return ((logp - ref_logp) * mask).sum(dim=1)


def check_response_kl(fn: Callable) -> bool:
    """Lab 08 exercise: fn(logp, ref_logp, mask) -> the k1 estimate of KL per response (B,)."""
    def inputs(gen):
        batch, T = _batch_shape(gen)
        logp, ref_logp = _logp_pair(gen, batch, T)
        return logp, ref_logp, ragged_mask(gen, batch, T)

    return check_function(
        fn, response_kl_reference, inputs,
        hint="k1 = logp - ref_logp per token, times the mask, summed over the tokens of each "
             "response (dim=1): a sum, not a mean, one number per row.")


def adaptive_kl_reference(beta: float, kl: float, target: float, horizon: int, n_steps: int):
    from .ppo import AdaptiveKLController

    controller = AdaptiveKLController(beta, target, horizon)
    controller.update(kl, n_steps)
    return controller.value


def _adaptive_kl_inputs(gen: torch.Generator):
    target = float(torch.rand(1, generator=gen) * 9 + 1)
    kl = target * float(torch.rand(1, generator=gen) * 3)  # from 0 to 3x the target
    beta = float(torch.rand(1, generator=gen) * 0.5 + 0.01)
    return beta, kl, target, _pick(gen, (100, 1000, 10_000)), _pick(gen, (16, 64, 256))


def check_adaptive_kl_update(fn: Callable) -> bool:
    """Lab 08 exercise: fn(beta, kl, target, horizon, n_steps) -> the next beta."""
    return check_function(
        fn, adaptive_kl_reference, _adaptive_kl_inputs, atol=1e-9, rtol=1e-7,
        hint="e = clip(kl / target - 1, -0.2, 0.2) (a relative error, clipped); "
             "beta' = beta * (1 + e * n_steps / horizon).")


def gao_fit_reference(d: torch.Tensor, gain: torch.Tensor):
    """(alpha, beta_rl): least squares of gain / d = alpha - beta_rl * log d."""
    X = torch.stack([torch.ones_like(d), -torch.log(d)], dim=1)
    coef = torch.linalg.lstsq(X, (gain / d)[:, None]).solution[:, 0]
    return coef[0], coef[1]


def _gao_inputs(gen: torch.Generator):
    n = int(torch.randint(4, 30, (1,), generator=gen))
    d = (torch.rand(n, generator=gen, dtype=torch.float64) * 4 + 0.05).sort().values
    alpha = float(torch.rand(1, generator=gen) * 2)
    beta_rl = float(torch.rand(1, generator=gen))
    noise = torch.randn(n, generator=gen, dtype=torch.float64) * 0.1
    return d, d * (alpha - beta_rl * torch.log(d)) + noise


def check_gao_fit(fn: Callable) -> bool:
    """Lab 08 exercise: fn(d, gain) -> (alpha, beta_rl), the least-squares fit of
    gain = d * (alpha - beta_rl * log d)."""
    return check_function(
        fn, gao_fit_reference, _gao_inputs, atol=1e-6, rtol=1e-5,
        hint="divide by d: gain / d = alpha - beta_rl * log d is a straight line in log d. "
             "Least squares with the columns [1, -log d] (torch.linalg.lstsq), or the "
             "closed form of a simple linear regression; return (alpha, beta_rl).")
