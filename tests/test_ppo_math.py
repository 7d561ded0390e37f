"""Every PPO formula against an independent reference: brute-force loops, hand
computations on tiny tensors, closed forms. No models: runs in seconds."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from moss_lab.configs import field_docs
from moss_lab.ppo import (AdaptiveKLController, FixedKLController, PPOConfig, RunningMoments,
                          discounted_returns, entropy_from_logits, explained_variance, gae,
                          kl_estimate, masked_mean, policy_loss, ptx_loss, shape_rewards,
                          value_loss, whiten)
from moss_lab.ppo.config import PRESETS
from moss_lab.ppo.rollout import top_p_filter


def random_episode_batch(seed=0, B=5, T=7):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(B, T, generator=g)
    values = torch.randn(B, T, generator=g)
    lengths = torch.tensor([T, 1, 3, T - 1, 5])[:B]
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    return rewards, values, mask, lengths


# ---------------------------------------------------------------------------------------
# Returns and GAE against double loops
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.5])
def test_discounted_returns_match_double_loop(gamma):
    rewards, _, mask, lengths = random_episode_batch()
    got = discounted_returns(rewards, gamma, mask)
    for b in range(rewards.shape[0]):
        L = int(lengths[b])
        for t in range(rewards.shape[1]):
            want = sum(gamma ** (k - t) * rewards[b, k].item() for k in range(t, L)) if t < L else 0.0
            assert got[b, t].item() == pytest.approx(want, abs=1e-5)


def test_discounted_returns_seed_formula():
    # the seed's R = sum_t gamma^t r_t is the return at t = 0
    r = torch.tensor([[1.0, 0.0, 2.0, -1.0]])
    assert discounted_returns(r, 0.5)[0, 0].item() == pytest.approx(1 + 0 + 0.25 * 2 - 0.125)


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0), (0.99, 0.0)])
def test_gae_matches_double_loop(gamma, lam):
    rewards, values, mask, lengths = random_episode_batch(seed=1)
    adv, ret = gae(rewards, values, gamma, lam, mask)
    for b in range(rewards.shape[0]):
        L = int(lengths[b])
        V = lambda k: values[b, k].item() if k < L else 0.0  # noqa: E731  after the end: 0
        deltas = [rewards[b, k].item() + gamma * V(k + 1) - V(k) for k in range(L)]
        for t in range(rewards.shape[1]):
            want = sum((gamma * lam) ** (k - t) * deltas[k] for k in range(t, L)) if t < L else 0.0
            assert adv[b, t].item() == pytest.approx(want, abs=1e-5)
            assert ret[b, t].item() == pytest.approx(want + V(t) if t < L else 0.0, abs=1e-5)


def test_gae_limits():
    rewards, values, mask, _ = random_episode_batch(seed=2)
    # lambda = 1: advantage = discounted return - V;  lambda = 0: the one-step TD error
    adv1, _ = gae(rewards, values, 0.9, 1.0, mask)
    torch.testing.assert_close(adv1, (discounted_returns(rewards, 0.9, mask) - values) * mask)
    adv0, _ = gae(rewards, values, 0.9, 0.0, mask)
    next_v = torch.cat([values[:, 1:] * mask[:, 1:], torch.zeros(len(values), 1)], dim=1)
    torch.testing.assert_close(adv0, (rewards + 0.9 * next_v - values) * mask)


# ---------------------------------------------------------------------------------------
# Whitening
# ---------------------------------------------------------------------------------------
def test_whiten_masked_moments():
    x = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, 5.0, -7.0, 99.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    w = whiten(x, mask)
    real = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    want = (real - real.mean()) / real.std(unbiased=False)
    torch.testing.assert_close(w[mask.bool()], want, atol=1e-5, rtol=1e-5)
    assert (w[~mask.bool()] == 0).all()
    kept = whiten(x, mask, shift_mean=False)
    torch.testing.assert_close(kept[mask.bool()], want + real.mean(), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------
# The critic's explained variance against numpy on the real tokens
# ---------------------------------------------------------------------------------------
def test_explained_variance_against_numpy():
    rewards, values, mask, _ = random_episode_batch(seed=4)
    _, returns = gae(rewards, values * mask, 1.0, 0.95, mask)
    pad = 1 - mask  # the padding holds garbage: only the mask keeps it out
    returns, values = returns + 30.0 * pad, values - 20.0 * pad
    got = explained_variance(values, returns, mask).item()
    real = mask.numpy().astype(bool)
    y = returns.numpy().astype(np.float64)
    v = values.numpy().astype(np.float64)
    want = 1 - np.var(y[real] - v[real]) / np.var(y[real])
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    ignoring_the_mask = 1 - np.var(y - v) / np.var(y)
    assert abs(ignoring_the_mask - want) > 0.1
    # the limits: perfect values explain everything, the mean return nothing
    assert explained_variance(returns, returns, mask).item() == pytest.approx(1.0)
    flat = torch.full_like(returns, float(y[real].mean()))
    assert explained_variance(flat, returns, mask).item() == pytest.approx(0.0, abs=1e-5)
    assert math.isnan(explained_variance(values, torch.ones_like(returns), mask).item())


# ---------------------------------------------------------------------------------------
# Losses against hand computations
# ---------------------------------------------------------------------------------------
def test_policy_loss_by_hand():
    # ratios 1.5, 0.5, 1.1, 0.7 (the last is padding); advantages +1, +1, -2, 5
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.7]]))
    adv = torch.tensor([[1.0, 1.0, -2.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, stats = policy_loss(logp, old, adv, mask, clip=0.2)
    # token 1: min(1.5*1, 1.2*1) = 1.2;  token 2: min(0.5, 0.8) = 0.5;
    # token 3: min(1.1*-2, 1.1*-2) = -2.2;  loss = -(1.2 + 0.5 - 2.2) / 3
    assert loss.item() == pytest.approx(-(1.2 + 0.5 - 2.2) / 3, abs=1e-6)
    assert stats["clipfrac"] == pytest.approx(2 / 3)
    want_kl = sum((r - 1) - math.log(r) for r in (1.5, 0.5, 1.1)) / 3
    assert stats["approx_kl"] == pytest.approx(want_kl, abs=1e-6)


def test_policy_loss_gradient_is_zero_when_clipped():
    logp = torch.log(torch.tensor([[1.5, 0.5]])).requires_grad_(True)
    loss, _ = policy_loss(logp, torch.zeros(1, 2), torch.tensor([[1.0, -1.0]]), torch.ones(1, 2))
    loss.backward()
    # ratio 1.5 with A > 0 and ratio 0.5 with A < 0 are both past the clip: no gradient
    assert torch.equal(logp.grad, torch.zeros(1, 2))


def test_value_loss_by_hand():
    v = torch.tensor([[1.0, 0.0, 2.0]])
    old = torch.tensor([[0.5, 0.0, 0.0]])
    ret = torch.tensor([[2.0, 1.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, stats = value_loss(v, old, ret, mask, clip=0.2)
    # token 1: V clipped to 0.7: max((1-2)^2, (0.7-2)^2) = 1.69; token 2: max(1, 1) = 1
    assert loss.item() == pytest.approx(0.5 * (1.69 + 1.0) / 2, abs=1e-6)
    assert stats["clipfrac"] == pytest.approx(0.5)
    plain, _ = value_loss(v, old, ret, mask, clip=None)
    assert plain.item() == pytest.approx(0.5 * (1.0 + 1.0) / 2)


def test_entropy_matches_torch_categorical():
    logits = torch.randn(3, 4, 11, generator=torch.Generator().manual_seed(0)) * 3
    want = torch.distributions.Categorical(logits=logits).entropy()
    torch.testing.assert_close(entropy_from_logits(logits), want, atol=1e-5, rtol=1e-5)


def test_masked_mean_and_ptx_loss():
    x, m = torch.tensor([[1.0, 2.0, 100.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    assert masked_mean(x, m).item() == pytest.approx(1.5)
    logits = torch.randn(2, 5, 9, generator=torch.Generator().manual_seed(1))
    ids = torch.tensor([[0, 0, 4, 5, 6], [1, 2, 3, 4, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    want = F.cross_entropy(logits[:, :-1].reshape(-1, 9), labels.reshape(-1), ignore_index=-100)
    assert ptx_loss(logits, ids, mask).item() == pytest.approx(want.item(), abs=1e-5)


# ---------------------------------------------------------------------------------------
# KL estimators against closed forms
# ---------------------------------------------------------------------------------------
P = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05])
Q = torch.tensor([0.2, 0.2, 0.2, 0.2, 0.2])


def exact_kl(p, q):
    return (p * (p / q).log()).sum().item()


def test_k1_k3_are_unbiased_exactly():
    # E_{x~p}[k(x)] by enumeration over the categorical: no sampling noise at all
    logp, logq = P.log(), Q.log()
    for kind in ("k1", "k3"):
        expectation = (P * kl_estimate(logp, logq, kind)).sum().item()
        assert expectation == pytest.approx(exact_kl(P, Q), abs=1e-6), kind
    # k2 is biased: its expectation is E[(log p/q)^2] / 2, not the KL
    k2 = (P * kl_estimate(logp, logq, "k2")).sum().item()
    assert k2 == pytest.approx(0.5 * (P * (P / Q).log() ** 2).sum().item(), abs=1e-6)
    assert abs(k2 - exact_kl(P, Q)) > 1e-3


def test_kl_estimators_monte_carlo():
    g = torch.Generator().manual_seed(0)
    x = torch.multinomial(P, 400_000, replacement=True, generator=g)
    logp, logq = P.log()[x], Q.log()[x]
    kl = exact_kl(P, Q)
    for kind in ("k1", "k3"):
        est = kl_estimate(logp, logq, kind)
        stderr = est.std().item() / math.sqrt(len(x))
        assert abs(est.mean().item() - kl) < 5 * stderr, kind
    assert (kl_estimate(logp, logq, "k3") >= 0).all()
    assert (kl_estimate(logp, logq, "k2") >= 0).all()
    # k2 is a good approximation when the two distributions are close
    near = torch.tensor([0.21, 0.2, 0.19, 0.2, 0.2])
    x = torch.multinomial(near, 400_000, replacement=True, generator=g)
    k2 = kl_estimate(near.log()[x], Q.log()[x], "k2").mean().item()
    assert k2 == pytest.approx(exact_kl(near, Q), rel=0.05)


def test_kl_estimator_names():
    with pytest.raises(ValueError, match="k1"):
        kl_estimate(torch.zeros(1), torch.zeros(1), "k4")


def test_kl_controllers():
    fixed = FixedKLController(0.1)
    fixed.update(100.0, 64)
    assert fixed.value == 0.1
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=1000)
    ctl.update(12.0, 100)  # error clipped to +0.2: beta *= 1 + 0.2 * 100 / 1000
    assert ctl.value == pytest.approx(0.1 * 1.02)
    ctl.update(5.4, 100)   # error -0.1: beta *= 1 - 0.1 * 0.1
    assert ctl.value == pytest.approx(0.1 * 1.02 * 0.99)


# ---------------------------------------------------------------------------------------
# Reward shaping and running moments
# ---------------------------------------------------------------------------------------
def test_shape_rewards_by_hand():
    scores = torch.tensor([2.0, -1.0])
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -3.0, -9.0]])
    ref = torch.tensor([[-1.5, -2.0, -1.0], [-0.5, -3.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, kl = shape_rewards(scores, logp, ref, mask, kl_coef=0.1, kl_estimator="k1")
    want = torch.tensor([[-0.05, 0.0, -0.05 + 2.0], [0.05, -1.0, 0.0]])
    torch.testing.assert_close(rewards, want)
    torch.testing.assert_close(kl, torch.tensor([[0.5, 0.0, 0.5], [-0.5, 0.0, 0.0]]))


def test_running_moments_match_concatenation():
    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(n, generator=g) * 3 + 2 for n in (64, 10, 33)]
    rm = RunningMoments()
    for b in batches:
        rm.update(b)
    allx = torch.cat(batches).double()
    assert rm.mean == pytest.approx(allx.mean().item(), abs=1e-9)
    assert rm.std == pytest.approx(allx.std(unbiased=False).item(), abs=1e-9)


def test_top_p_filter_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [[True, True, False, False]]   # 0.5 + 0.3 reaches 0.7
    assert torch.isfinite(top_p_filter(logits, 0.1)).sum() == 1  # the top token always stays
    assert torch.equal(top_p_filter(logits, 1.0), logits)


# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------
def test_every_config_field_has_a_docstring():
    import dataclasses

    names = [f.name for f in dataclasses.fields(PPOConfig)]
    missing = [n for n in names if not field_docs(PPOConfig).get(n)]
    assert not missing, f"fields without a docstring: {missing}"


def test_presets_and_overrides():
    assert set(PRESETS) == {"toy-fast", "gpu-small"}
    cfg = PPOConfig.preset("toy-fast", kl_coef=0.0)
    assert cfg.kl_coef == 0.0 and cfg.batch_size == PPOConfig().batch_size
    assert PPOConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown preset"):
        PPOConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown PPOConfig fields"):
        PPOConfig.from_dict({"kl": 1})
    # the PPO-max recipe is the default
    d = PPOConfig()
    assert d.token_level_kl and d.reward_norm and d.value_clip == 0.2
    assert d.critic_init == "reward" and d.critic_pretrain_steps > 0 and d.max_grad_norm == 1.0


@pytest.mark.parametrize("field, value", [("lr", -1.0), ("batch_size", 0), ("temperature", 0.0),
                                          ("top_p", 1.5), ("kl_estimator", "k9"), ("lam", 2.0)])
def test_config_refuses_impossible_settings(field, value):
    from moss_lab.ppo import PPOConfig

    with pytest.raises(ValueError, match=field):
        PPOConfig(**{field: value})
