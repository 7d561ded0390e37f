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
                   compare_grads: bool = False, hint: str | None = None,
                   seed: int = 0) -> bool:
    """Compare `learner_fn` with `reference_fn` on `n_trials` random inputs; print a verdict.

    make_inputs(gen) returns the arguments of one trial: a tuple (positional) or a dict
    (keyword). Outputs may be tensors, numbers, bools, or tuples/lists of these; they
    must match in shape and agree within atol + rtol * |expected|.

    With compare_grads=True, every floating-point tensor argument also gets
    requires_grad, and d(sum of output)/d(argument) must match too: this catches a
    function whose values are right but that breaks the gradient (.item(), .detach(),
    a Python loop over floats...).
    """
    name = getattr(learner_fn, "__name__", "your function")
    gen = torch.Generator().manual_seed(seed)
    for trial in range(n_trials):
        inputs = make_inputs(gen)
        expected, exp_grads = _call(reference_fn, inputs, compare_grads)
        try:
            got, got_grads = _call(learner_fn, inputs, compare_grads)
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
            problem = _compare_grads(exp_grads, got_grads, inputs, atol, rtol)
        if problem is not None:
            print(f"❌ Mismatch on input #{trial}: {_show_inputs(inputs)}\n   {problem}")
            if hint:
                print(f"   Hint: {hint}")
            return False
    what = "values and gradients" if compare_grads else "values"
    print(f"✅ Correct: `{name}` matches the reference ({what}) on {n_trials} random inputs.")
    return True


def _call(fn: Callable, inputs: tuple | dict, with_grads: bool):
    """Run fn on fresh copies of the inputs; return (output, grads or None)."""
    args = inputs if isinstance(inputs, dict) else tuple(inputs)
    leaves = []

    def fresh(x):
        if isinstance(x, torch.Tensor):
            x = x.detach().clone()
            if with_grads and x.is_floating_point():
                x.requires_grad_(True)
                leaves.append(x)
        return x

    if isinstance(args, dict):
        args = {k: fresh(v) for k, v in args.items()}
        out = fn(**args)
    else:
        args = tuple(fresh(v) for v in args)
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


def _compare_grads(expected, got, inputs, atol, rtol) -> str | None:
    if expected is None or isinstance(expected, str):  # the reference has no gradient either
        return None
    if isinstance(got, str):
        return ("your output carries no gradient: use torch operations all the way "
                "(no .item(), .detach(), .numpy() or math.* on tensors)")
    names = list(inputs) if isinstance(inputs, dict) else [
        f"argument {i}" for i, x in enumerate(inputs)
        if isinstance(x, torch.Tensor) and x.is_floating_point()]
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
# Labs 04-05: returns, the clipped surrogate, TD errors and GAE (references: moss_lab.ppo)
# ---------------------------------------------------------------------------------------
def _episode_batch(gen: torch.Generator):
    """Rewards (batch, T) shaped like RLHF's: small per-token terms, a score on the last."""
    batch, T = (int(torch.randint(1, n, (1,), generator=gen)) for n in (5, 13))
    rewards = torch.randn(batch, T, generator=gen) * 0.1
    rewards[:, -1] += torch.randn(batch, generator=gen) * 2
    return rewards


def _gamma(gen: torch.Generator) -> float:
    choices = (1.0, 0.99, 0.9, 0.5, 0.0)  # the ends (1 and 0) catch off-by-one exponents
    return choices[int(torch.randint(0, len(choices), (1,), generator=gen))]


def check_discounted_returns(fn: Callable) -> bool:
    """Lab 04 exercise: fn(rewards (batch, T), gamma) -> returns-to-go G (batch, T)."""
    from .ppo.advantages import discounted_returns

    return check_function(
        fn, discounted_returns, lambda gen: (_episode_batch(gen), _gamma(gen)),
        hint="go backwards: G[:, T-1] = r[:, T-1], then G[:, t] = r[:, t] + gamma * G[:, t+1]. "
             "Column t is the return from step t on, not the total return.")


def _surrogate_inputs(gen: torch.Generator):
    batch, T = (int(torch.randint(1, n, (1,), generator=gen)) for n in (5, 9))
    old_logp = -torch.rand(batch, T, generator=gen) * 3
    logp = old_logp + torch.randn(batch, T, generator=gen) * 0.3  # ratios around 1, some clipped
    advantages = torch.randn(batch, T, generator=gen)
    lengths = torch.randint(1, T + 1, (batch,), generator=gen)
    # an integer mask: 1 on response tokens, 0 on the padding after them
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    clip = (0.1, 0.2, 0.3)[int(torch.randint(0, 3, (1,), generator=gen))]
    return logp, old_logp, advantages, mask, clip


def _library_policy_loss(logp, old_logp, advantages, mask, clip):
    from .ppo.losses import policy_loss

    return policy_loss(logp, old_logp, advantages, mask, clip)[0]


def check_clipped_surrogate(fn: Callable) -> bool:
    """Lab 04 exercise: fn(logp, old_logp, advantages, mask, clip) -> the PPO policy loss."""
    return check_function(
        fn, _library_policy_loss, _surrogate_inputs, compare_grads=True,
        hint="ratio = exp(logp - old_logp); loss = -min(ratio * A, clamp(ratio, 1 - clip, "
             "1 + clip) * A), averaged over the tokens where mask is 1 (sum(x * mask) / "
             "sum(mask)), not over the padding.")


def _values_batch(gen: torch.Generator):
    rewards = _episode_batch(gen)
    values = torch.randn(rewards.shape, generator=gen)
    return rewards, values


def td_errors_reference(rewards, values, gamma):
    """delta_t = r_t + gamma * V_{t+1} - V_t, with V_T = 0: GAE with lambda = 0."""
    from .ppo.advantages import gae

    return gae(rewards, values, gamma, 0.0)[0]


def check_td_errors(fn: Callable) -> bool:
    """Lab 05 exercise: fn(rewards, values, gamma) -> TD errors delta (batch, T)."""
    return check_function(
        fn, td_errors_reference, lambda gen: (*_values_batch(gen), _gamma(gen)),
        hint="delta[:, t] = r[:, t] + gamma * V[:, t+1] - V[:, t]; after the last token the "
             "episode is over, so use 0 for V[:, T].")


def _library_gae(rewards, values, gamma, lam):
    from .ppo.advantages import gae

    return gae(rewards, values, gamma, lam)


def check_gae(fn: Callable) -> bool:
    """Lab 05 exercise: fn(rewards, values, gamma, lam) -> (advantages, returns)."""
    lams = (1.0, 0.95, 0.5, 0.0)
    return check_function(
        fn, _library_gae,
        lambda gen: (*_values_batch(gen), _gamma(gen),
                     lams[int(torch.randint(0, len(lams), (1,), generator=gen))]),
        hint="backwards: A[:, t] = delta[:, t] + gamma * lam * A[:, t+1] (A after the last "
             "token is 0); returns = A + values.")
