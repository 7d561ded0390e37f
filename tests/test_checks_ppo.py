"""The lab 04-08 checkers: correct answers pass (written independently of moss_lab.ppo, in
other but equivalent forms, with the rollout data detached), plausible wrong answers fail
(sign errors, missing masks, off-by-one at the last token, mean vs sum), stubs report
'not implemented', and nothing a learner writes makes a checker raise.

The brute-force answers (sums over k >= t) also tie the library's references to the
formulas.
"""

import pytest
import torch
import torch.nn.functional as F

from moss_lab import checks


def not_implemented(*args):
    raise NotImplementedError


def lengths_of(mask):
    return [int(n) for n in mask.sum(dim=1)]


# ---------------------------------------------------------------------------------------
# Lab 04: returns-to-go and the clipped surrogate
# ---------------------------------------------------------------------------------------
def returns_brute(rewards, gamma, mask):
    B, T = rewards.shape
    out = torch.zeros(B, T)
    for b, n in enumerate(lengths_of(mask)):
        for t in range(n):
            out[b, t] = sum(gamma ** (k - t) * rewards[b, k] for k in range(t, n))
    return out


def returns_unmasked(rewards, gamma, mask):
    return returns_brute(rewards, gamma, torch.ones_like(mask))


def test_discounted_returns_checker(capsys):
    assert checks.check_discounted_returns(returns_brute)
    # a vectorised form: G_t = sum_k gamma^(k-t) r_k as a triangular matrix product
    def triangular(r, g, m):
        T = r.shape[1]
        k, t = torch.arange(T)[None, :], torch.arange(T)[:, None]
        weights = torch.where(k >= t, torch.tensor(g, dtype=r.dtype) ** (k - t).clamp(min=0), 0)
        if g == 0.0:
            weights = (k == t).to(r.dtype)
        return (r * m) @ weights.T
    assert checks.check_discounted_returns(triangular)
    # the total return in every column, the forward cumulative sum, the padding's rewards
    assert not checks.check_discounted_returns(
        lambda r, g, m: returns_brute(r, g, m)[:, :1].expand_as(r) * m)
    assert not checks.check_discounted_returns(lambda r, g, m: (r * m).cumsum(dim=1))
    assert not checks.check_discounted_returns(returns_unmasked)
    assert not checks.check_discounted_returns(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 2 and out.count("❌") == 3 and "Not implemented" in out


def surrogate_by_hand(logp, old_logp, advantages, mask, clip):
    ratio = (logp - old_logp).exp()
    per_token = -torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    return per_token[mask.bool()].mean()


def surrogate_detached(logp, old_logp, advantages, mask, clip):
    """Correct, and detaches the rollout data as a training loop may: passes."""
    return surrogate_by_hand(logp, old_logp.detach(), advantages.detach(), mask, clip)


def surrogate_where(logp, old_logp, advantages, mask, clip):
    """The same loss in PPO paper's case form: clip the ratio only where it gains."""
    ratio = torch.exp(logp - old_logp)
    capped = torch.where(advantages >= 0, torch.clamp(ratio, max=1 + clip),
                         torch.clamp(ratio, min=1 - clip))
    per_token = -torch.minimum(ratio * advantages, capped * advantages)
    return (per_token * mask).sum() / mask.sum()


def test_clipped_surrogate_checker(capsys):
    assert checks.check_clipped_surrogate(surrogate_by_hand)
    assert checks.check_clipped_surrogate(surrogate_detached)
    assert checks.check_clipped_surrogate(surrogate_where)
    # the mean over padding too; max instead of min; a detached policy log-prob (no gradient);
    # the sum over tokens instead of the mean; the ratio upside down
    assert not checks.check_clipped_surrogate(
        lambda lp, olp, a, m, c: (-torch.minimum((lp - olp).exp() * a,
                                                  (lp - olp).exp().clamp(1 - c, 1 + c) * a)
                                   * m).mean())
    assert not checks.check_clipped_surrogate(
        lambda lp, olp, a, m, c: -torch.maximum((lp - olp).exp() * a,
                                                (lp - olp).exp().clamp(1 - c, 1 + c) * a)[m.bool()].mean())
    assert not checks.check_clipped_surrogate(
        lambda lp, olp, a, m, c: surrogate_by_hand(lp.detach(), olp, a, m, c))
    assert not checks.check_clipped_surrogate(
        lambda lp, olp, a, m, c: surrogate_by_hand(lp, olp, a, m, c) * m.sum())
    assert not checks.check_clipped_surrogate(
        lambda lp, olp, a, m, c: surrogate_by_hand(olp, lp, a, m, c))
    assert not checks.check_clipped_surrogate(not_implemented)
    assert capsys.readouterr().out.count("✅") == 3


# ---------------------------------------------------------------------------------------
# Lab 05: TD errors and GAE
# ---------------------------------------------------------------------------------------
def td_brute(rewards, values, gamma, mask):
    out = torch.zeros_like(rewards)
    for b, n in enumerate(lengths_of(mask)):
        for t in range(n):
            nxt = values[b, t + 1] if t + 1 < n else 0.0
            out[b, t] = rewards[b, t] + gamma * nxt - values[b, t]
    return out


def gae_brute(rewards, values, gamma, lam, mask):
    delta = td_brute(rewards, values, gamma, mask)
    adv = torch.zeros_like(rewards)
    for b, n in enumerate(lengths_of(mask)):
        for t in range(n):
            adv[b, t] = sum((gamma * lam) ** (k - t) * delta[b, k] for k in range(t, n))
    return adv, adv + values * mask


def test_td_errors_checker(capsys):
    assert checks.check_td_errors(td_brute)
    assert checks.check_td_errors(  # vectorised, with a float or an integer mask alike
        lambda r, v, g, m: (r + g * F.pad((v * m)[:, 1:], (0, 1)) - v) * m)
    # bootstraps from the value after the episode ended (roll wraps around)
    assert not checks.check_td_errors(lambda r, v, g, m: (r + g * torch.roll(v, -1, dims=1) - v) * m)
    # masks the output but bootstraps the last real token from a padded value
    assert not checks.check_td_errors(lambda r, v, g, m: (r + g * F.pad(v[:, 1:], (0, 1)) - v) * m)
    # right on the real tokens, junk on the padding
    assert not checks.check_td_errors(lambda r, v, g, m: r + g * F.pad((v * m)[:, 1:], (0, 1)) - v)
    assert not checks.check_td_errors(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 2 and out.count("❌") == 3


def test_gae_checker(capsys):
    assert checks.check_gae(gae_brute)
    assert not checks.check_gae(lambda r, v, g, l, m: (gae_brute(r, v, g, l, m)[0],
                                                       gae_brute(r, v, g, l, m)[0]))  # returns != A
    assert not checks.check_gae(lambda r, v, g, l, m: gae_brute(r, v, g, 1.0, m))  # ignores lambda
    assert not checks.check_gae(  # no mask at all
        lambda r, v, g, l, m: gae_brute(r, v, g, l, torch.ones_like(m)))
    assert not checks.check_gae(  # returns = A + V with the padding's junk values
        lambda r, v, g, l, m: (gae_brute(r, v, g, l, m)[0], gae_brute(r, v, g, l, m)[0] + v))
    assert not checks.check_gae(not_implemented)
    assert capsys.readouterr().out.count("✅") == 1


# ---------------------------------------------------------------------------------------
# Lab 06: KL estimators, reward shaping, exact categorical KL
# ---------------------------------------------------------------------------------------
def kl_by_hand(logp, ref_logp):
    ratio = torch.exp(ref_logp - logp)  # ref / pi
    return logp - ref_logp, 0.5 * (logp - ref_logp) ** 2, ratio - 1 - torch.log(ratio)


def test_kl_estimates_checker(capsys):
    assert checks.check_kl_estimates(kl_by_hand)
    swap = lambda lp, rlp: kl_by_hand(rlp, lp)  # noqa: E731  log r the wrong way round
    no_half = lambda lp, rlp: (lp - rlp, (lp - rlp) ** 2, kl_by_hand(lp, rlp)[2])  # noqa: E731
    k3_sign = lambda lp, rlp: (*kl_by_hand(lp, rlp)[:2],  # noqa: E731
                               torch.exp(rlp - lp) - 1 + (rlp - lp))
    for wrong in (swap, no_half, k3_sign):
        assert not checks.check_kl_estimates(wrong)
    assert not checks.check_kl_estimates(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 1 and out.count("❌") == 3


def shaping_by_hand(scores, logp, ref_logp, mask, kl_coef):
    rewards = torch.zeros_like(logp)
    for b, n in enumerate(lengths_of(mask)):
        for t in range(n):
            rewards[b, t] = -kl_coef * (logp[b, t] - ref_logp[b, t])
        rewards[b, n - 1] += scores[b]
    return rewards


def shaping_vectorised(scores, logp, ref_logp, mask, kl_coef):
    """The last real token found as where the mask drops from 1 to 0; inputs detached."""
    logp, ref_logp = logp.detach(), ref_logp.detach()
    last = mask - F.pad(mask[:, 1:], (0, 1))
    return (-kl_coef * (logp - ref_logp) + scores[:, None] * last) * mask


def test_shape_rewards_checker(capsys):
    assert checks.check_shape_rewards(shaping_by_hand)
    assert checks.check_shape_rewards(shaping_vectorised)

    def score_on_column(col):
        def fn(s, lp, rlp, m, beta):
            r = -beta * (lp - rlp) * m
            r[torch.arange(len(s)), col(m)] += s
            return r
        return fn

    wrong = [
        score_on_column(lambda m: torch.full((len(m),), m.shape[1] - 1)),  # the last column
        score_on_column(lambda m: (m.sum(1).long()).clamp(max=m.shape[1] - 1)),  # one too far
        lambda s, lp, rlp, m, beta: shaping_by_hand(s, lp, rlp, m, -beta),  # penalty sign
        lambda s, lp, rlp, m, beta: shaping_by_hand(s, lp, rlp, torch.ones_like(m), beta) * m,  # score cut off
        lambda s, lp, rlp, m, beta: -beta * (lp - rlp) + shaping_by_hand(s, lp, rlp, m, 0.0),  # KL on padding
        lambda s, lp, rlp, m, beta: (-beta * (lp - rlp) + s[:, None]) * m,  # score on every token
    ]
    for fn in wrong:
        assert not checks.check_shape_rewards(fn)
    assert not checks.check_shape_rewards(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 2 and out.count("❌") == len(wrong)


def categorical_kl_by_hand(logits, ref_logits):
    """KL = sum p log p - sum p log q, through torch.distributions; ref detached."""
    p = torch.distributions.Categorical(logits=logits)
    q = torch.distributions.Categorical(logits=ref_logits.detach())
    return torch.distributions.kl_divergence(p, q)


def test_categorical_kl_checker(capsys):
    assert checks.check_categorical_kl(categorical_kl_by_hand)
    assert checks.check_categorical_kl(  # F.kl_div takes (log q, log p) and returns p (log p - log q)
        lambda l, rl: F.kl_div(F.log_softmax(rl, -1), F.log_softmax(l, -1), log_target=True,
                               reduction="none").sum(-1))
    wrong = [
        lambda l, rl: categorical_kl_by_hand(rl, l),  # KL(ref || pi)
        lambda l, rl: (torch.softmax(l, -1) * (l - rl)).sum(-1),  # logits, not log-probs
        lambda l, rl: (torch.log_softmax(l, -1) - torch.log_softmax(rl, -1)).mean(-1),  # no p weights
        lambda l, rl: categorical_kl_by_hand(l.detach(), rl),  # no gradient
    ]
    for fn in wrong:
        assert not checks.check_categorical_kl(fn)
    assert not checks.check_categorical_kl(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 2 and out.count("❌") == len(wrong)


# ---------------------------------------------------------------------------------------
# Lab 07: running moments, score normalisation, the clipped value loss
# ---------------------------------------------------------------------------------------
def moments_by_sums(mean, var, count, xs):
    """Merge by sums and sums of squares (a different formula; fine in float64)."""
    xs = xs.double()
    total = count + len(xs)
    s = mean * count + xs.sum().item()
    sq = (var + mean ** 2) * count + (xs ** 2).sum().item()
    new_mean = s / total
    return new_mean, sq / total - new_mean ** 2, total


def test_moments_update_checker(capsys):
    assert checks.check_moments_update(moments_by_sums)
    # the streamed moments equal those of everything seen so far
    stream = [torch.randn(n) * 3 + 1 for n in (5, 1, 17, 8)]
    mean, var, count = 0.0, 1.0, 1e-24
    for xs in stream:
        mean, var, count = checks.moments_update_reference(mean, var, count, xs)
    everything = torch.cat(stream).double()
    assert mean == pytest.approx(everything.mean().item())
    assert var == pytest.approx(everything.var(unbiased=False).item())

    def without_cross_term(mean, var, count, xs):
        n, m, v = len(xs), xs.double().mean().item(), xs.double().var(unbiased=False).item()
        total = count + n
        return mean + (m - mean) * n / total, (var * count + v * n) / total, total

    def unbiased_batch_var(mean, var, count, xs):
        n, m = len(xs), xs.double().mean().item()
        v = xs.double().var().item() if n > 1 else 0.0
        delta, total = m - mean, count + n
        return (mean + delta * n / total,
                (var * count + v * n + delta ** 2 * count * n / total) / total, total)

    def average_of_means(mean, var, count, xs):
        return (mean + xs.mean().item()) / 2, xs.var(unbiased=False).item(), count + len(xs)

    for fn in (without_cross_term, unbiased_batch_var, average_of_means):
        assert not checks.check_moments_update(fn)
    assert not checks.check_moments_update(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 1 and out.count("❌") == 3


def normalise_by_hand(scores, mean, std, clip):
    z = (scores - mean) / std  # no epsilon: equivalent at these scales
    return z if clip is None else torch.clamp(z, -clip, clip)


def test_normalise_scores_checker(capsys):
    assert checks.check_normalise_scores(normalise_by_hand)
    wrong = [
        lambda s, m, sd, c: normalise_by_hand(s, m, sd ** 2, c),  # divides by the variance
        lambda s, m, sd, c: normalise_by_hand(s + m, m, sd, c) if c is None else  # no centring
        (s / sd).clamp(-c, c),
        lambda s, m, sd, c: s if c is None else (s.clamp(-c, c) - m) / sd,  # clips first
        lambda s, m, sd, c: normalise_by_hand(s, m, sd, None).clamp(max=c),  # one side only
    ]
    for fn in wrong:
        assert not checks.check_normalise_scores(fn)
    assert not checks.check_normalise_scores(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 1 and out.count("❌") == len(wrong)


def value_loss_by_hand(values, old_values, returns, mask, clip):
    v_clip = torch.maximum(torch.minimum(values, old_values + clip), old_values - clip)
    err = torch.maximum((values - returns) ** 2, (v_clip - returns) ** 2)
    return 0.5 * err[mask.bool()].mean()


def test_value_loss_checker(capsys):
    assert checks.check_value_loss(value_loss_by_hand)
    assert checks.check_value_loss(  # rollout data detached
        lambda v, ov, R, m, c: value_loss_by_hand(v, ov.detach(), R.detach(), m, c))

    def loss(v, ov, R, m, c, pick=torch.maximum, half=0.5, reduce="masked"):
        v_clip = ov + torch.clamp(v - ov, -c, c)
        err = pick((v - R) ** 2, (v_clip - R) ** 2)
        if reduce == "masked":
            return half * (err * m).sum() / m.sum()
        return half * (err * m).mean() if reduce == "all" else half * (err * m).sum()

    wrong = [
        lambda v, ov, R, m, c: loss(v, ov, R, m, c, pick=torch.minimum),  # optimistic
        lambda v, ov, R, m, c: loss(v, ov, R, m, c, half=1.0),  # no 1/2
        lambda v, ov, R, m, c: loss(v, ov, R, m, c, reduce="all"),  # mean over the padding too
        lambda v, ov, R, m, c: loss(v, ov, R, m, c, reduce="sum"),  # sum, not mean
        lambda v, ov, R, m, c: 0.5 * ((torch.clamp(v, -c, c) - R) ** 2 * m).sum() / m.sum(),  # clips V itself
        lambda v, ov, R, m, c: loss(v.detach(), ov, R, m, c),  # no gradient
    ]
    for fn in wrong:
        assert not checks.check_value_loss(fn)
    assert not checks.check_value_loss(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 2 and out.count("❌") == len(wrong)


# ---------------------------------------------------------------------------------------
# Lab 08: KL per response, the adaptive KL controller, Gao et al.'s fit
# ---------------------------------------------------------------------------------------
def test_response_kl_checker(capsys):
    assert checks.check_response_kl(lambda lp, rlp, m: torch.einsum("bt,bt->b", lp - rlp, m.float()))
    wrong = [
        lambda lp, rlp, m: ((lp - rlp) * m).sum(1) / m.sum(1),  # mean per token
        lambda lp, rlp, m: (lp - rlp).sum(1),  # padding included
        lambda lp, rlp, m: ((rlp - lp) * m).sum(1),  # sign
        lambda lp, rlp, m: ((lp - rlp) * m).sum(),  # one number for the batch
    ]
    for fn in wrong:
        assert not checks.check_response_kl(fn)
    assert not checks.check_response_kl(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 1 and out.count("❌") == len(wrong)


def test_adaptive_kl_checker(capsys):
    def by_hand(beta, kl, target, horizon, n_steps):
        error = max(-0.2, min(0.2, (kl - target) / target))
        return beta + beta * error * n_steps / horizon

    assert checks.check_adaptive_kl_update(by_hand)
    # the reference is the trainer's controller
    assert checks.adaptive_kl_reference(0.1, 8.0, 4.0, 100, 50) == pytest.approx(0.1 * 1.1)
    wrong = [
        lambda b, kl, t, h, n: b * (1 + (kl / t - 1) * n / h),  # no clip
        lambda b, kl, t, h, n: b * (1 + max(-0.2, min(0.2, kl - t)) * n / h),  # absolute error
        lambda b, kl, t, h, n: b * (1 - max(-0.2, min(0.2, kl / t - 1)) * n / h),  # sign
        lambda b, kl, t, h, n: b + max(-0.2, min(0.2, kl / t - 1)) * n / h,  # additive
    ]
    for fn in wrong:
        assert not checks.check_adaptive_kl_update(fn)
    assert not checks.check_adaptive_kl_update(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 1 and out.count("❌") == len(wrong)


def test_gao_fit_checker(capsys):
    def closed_form(d, gain):
        x, y = torch.log(d), gain / d
        slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
        return y.mean() - slope * x.mean(), -slope

    assert checks.check_gao_fit(closed_form)
    # the fit recovers the law it was drawn from when there is no noise
    d = torch.linspace(0.1, 4, 20, dtype=torch.float64)
    alpha, beta_rl = checks.gao_fit_reference(d, d * (1.3 - 0.4 * torch.log(d)))
    assert (float(alpha), float(beta_rl)) == pytest.approx((1.3, 0.4))
    wrong = [
        lambda d, g: (closed_form(d, g)[0], -closed_form(d, g)[1]),  # sign of beta_RL
        lambda d, g: closed_form(d, g * d),  # fits gain, not gain / d
        lambda d, g: closed_form(torch.exp(d), g * torch.exp(d) / d),  # regresses on d, not log d
    ]
    for fn in wrong:
        assert not checks.check_gao_fit(fn)
    assert not checks.check_gao_fit(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 1 and out.count("❌") == len(wrong)


# ---------------------------------------------------------------------------------------
# Every checker: masked cases are drawn, nothing raises, the fallback rule
# ---------------------------------------------------------------------------------------
ALL_CHECKERS = [
    checks.check_discounted_returns, checks.check_clipped_surrogate, checks.check_td_errors,
    checks.check_gae, checks.check_kl_estimates, checks.check_shape_rewards,
    checks.check_categorical_kl, checks.check_moments_update, checks.check_normalise_scores,
    checks.check_value_loss, checks.check_response_kl, checks.check_adaptive_kl_update,
    checks.check_gao_fit,
]


def test_ragged_masks_are_prefixes_with_short_and_full_rows():
    gen = torch.Generator().manual_seed(0)
    masks = [checks.ragged_mask(gen, 4, 6) for _ in range(40)]
    for m in masks:
        assert torch.equal(m, m.cummin(dim=1).values) and (m.sum(1) >= 1).all()
    assert any((m == 0).any() for m in masks) and any((m == 1).all() for m in masks)
    assert any((m.sum(1) == 1).any() for m in masks)


@pytest.mark.parametrize("checker", ALL_CHECKERS, ids=lambda c: c.__name__)
def test_checkers_never_raise_on_a_crashing_answer(checker, capsys):
    def crashes(*args):
        return torch.zeros(2, 3) @ torch.zeros(4, 5)  # a shape error

    assert checker(crashes) is False
    assert "raised" in capsys.readouterr().out


def test_use_if_passed(capsys):
    mine, library = (lambda: "mine"), (lambda: "library")
    assert checks.use_if_passed(mine, True, library) is mine
    assert capsys.readouterr().out == ""
    assert checks.use_if_passed(mine, False, library) is library
    assert "library" in capsys.readouterr().out
