"""The exercise checkers must be able to fail: right answers pass, wrong ones fail,
stubs report 'not implemented', and nothing a learner writes makes a checker raise."""
import random

import pytest
import torch
import torch.nn.functional as F

from moss_lab import checks
from moss_lab.toyworld import SimulatedAnnotator, gold_score, sample_prompts, sample_response


def stub(*args, **kwargs):
    raise NotImplementedError


# ---------------------------------------------------------------------------------------
# The generic engine
# ---------------------------------------------------------------------------------------
def square_inputs(gen):
    return (torch.randn(5, generator=gen),)


def test_engine_passes_a_correct_function(capsys):
    assert checks.check_function(lambda x: x * x, lambda x: x ** 2, square_inputs)
    out = capsys.readouterr().out
    assert "✅ Correct" in out and "20 random inputs" in out


def test_engine_fails_a_wrong_function_and_shows_the_input(capsys):
    assert not checks.check_function(lambda x: x * x + 1e-3, lambda x: x ** 2, square_inputs,
                                     hint="square it")
    out = capsys.readouterr().out
    assert "❌ Mismatch on input #0" in out and "expected" in out and "got" in out
    assert "Hint: square it" in out and "✅" not in out


def test_engine_reports_not_implemented(capsys):
    assert not checks.check_function(stub, lambda x: x ** 2, square_inputs)
    out = capsys.readouterr().out
    assert "⚠️ Not implemented yet" in out and "❌" not in out


@pytest.mark.parametrize("bad, message", [
    (lambda x: x[:2] ** 2, "expected shape (5,), got shape (2,)"),
    (lambda x: None, "returned None"),
    (lambda x: "a string", "not a number or tensor"),
    (lambda x: x.undefined_method(), "raised AttributeError"),
    (lambda x: (x ** 2, x), "expected a single value, got a tuple of 2"),
])
def test_engine_reports_each_kind_of_mistake_without_raising(bad, message, capsys):
    assert not checks.check_function(bad, lambda x: x ** 2, square_inputs)
    assert message in capsys.readouterr().out


def test_engine_compares_tuples_element_by_element(capsys):
    ref = lambda x: (x.sum(), x * 2)  # noqa: E731
    assert checks.check_function(lambda x: (x.sum(), x + x), ref, square_inputs)
    assert not checks.check_function(lambda x: (x.sum(), x * 3), ref, square_inputs)
    assert "output[1]" in capsys.readouterr().out


def test_engine_catches_a_broken_gradient_only_when_asked(capsys):
    # right values, but the gradient is cut by detach(): passes a value-only check ...
    detached = lambda x: x.detach() ** 2  # noqa: E731
    assert checks.check_function(detached, lambda x: x ** 2, square_inputs)
    # ... and fails when gradients are compared
    assert not checks.check_function(detached, lambda x: x ** 2, square_inputs,
                                     compare_grads=True)
    assert "carries no gradient" in capsys.readouterr().out


def test_engine_catches_a_wrong_gradient_with_right_values(capsys):
    # x**2 computed as x * x.detach(): same values, half the gradient
    half = lambda x: x * x.detach()  # noqa: E731
    assert not checks.check_function(half, lambda x: x ** 2, square_inputs, compare_grads=True)
    assert "gradient with respect to argument 0" in capsys.readouterr().out


def test_engine_compares_gradients_only_with_respect_to_grad_wrt(capsys):
    def two(gen):
        return torch.randn(5, generator=gen), torch.randn(5, generator=gen)

    ref = lambda x, c: x * c  # noqa: E731  x is what a loss is differentiated by, c is data
    detached_data = lambda x, c: x * c.detach()  # noqa: E731
    assert not checks.check_function(detached_data, ref, two, compare_grads=True)
    assert checks.check_function(detached_data, ref, two, compare_grads=True, grad_wrt=(0,))
    detached_x = lambda x, c: x.detach() * c  # noqa: E731
    assert not checks.check_function(detached_x, ref, two, compare_grads=True, grad_wrt=(0,))
    # keyword inputs are named
    wrong_c = lambda x, c: x * c.detach() + c - c.detach()  # noqa: E731  same value, d/dc = 1
    assert not checks.check_function(wrong_c, ref, lambda gen: dict(zip("xc", two(gen))),
                                     compare_grads=True, grad_wrt=("c",))
    assert "gradient with respect to c" in capsys.readouterr().out


def test_engine_accepts_keyword_inputs_and_python_floats(capsys):
    def inputs(gen):
        return {"a": float(torch.rand(1, generator=gen)), "b": 2.0}
    assert checks.check_function(lambda a, b: a * b, lambda a, b: torch.tensor(a * b), inputs)


def test_engine_does_not_let_the_learner_modify_the_reference_inputs():
    def inplace(x):
        x.mul_(2)
        return x
    # the reference runs first on its own copy; the learner's in-place edit is harmless
    assert checks.check_function(inplace, lambda x: 2 * x, square_inputs)


# ---------------------------------------------------------------------------------------
# Lab 01
# ---------------------------------------------------------------------------------------
def test_annotator_reference_is_the_simulated_annotator_formula():
    rng = random.Random(0)
    prompts = sample_prompts(30, seed=1)
    for noise, bias in [(0.5, 0.0), (1.0, 0.2), (3.0, 0.05)]:
        annotator = SimulatedAnnotator(noise=noise, length_bias=bias)
        for p in prompts:
            (a, ea), (b, eb) = sample_response(p, rng), sample_response(p, rng)
            ref = checks.annotator_prob_reference(
                torch.tensor(gold_score(p, a, ea).total), torch.tensor(gold_score(p, b, eb).total),
                torch.tensor(float(len(a.split()))), torch.tensor(float(len(b.split()))),
                noise, bias)
            assert ref.item() == pytest.approx(annotator.prob_a(p, a, b, ea, eb), abs=1e-6)


def test_check_annotator_prob(capsys):
    right = lambda ga, gb, la, lb, noise, bias: torch.sigmoid((ga - gb + bias * (la - lb)) / noise)  # noqa: E731
    forgot_noise = lambda ga, gb, la, lb, noise, bias: torch.sigmoid(ga - gb + bias * (la - lb))  # noqa: E731
    assert checks.check_annotator_prob(right)
    assert not checks.check_annotator_prob(forgot_noise)
    assert not checks.check_annotator_prob(stub)
    out = capsys.readouterr().out
    assert out.count("✅") == 1 and out.count("❌") == 1 and out.count("⚠️") == 1


# ---------------------------------------------------------------------------------------
# Lab 02
# ---------------------------------------------------------------------------------------
def bt_loss_by_hand(r_c, r_r):
    return -F.logsigmoid(r_c - r_r).mean()


def test_check_bt_probability(capsys):
    assert checks.check_bt_probability(lambda a, b: 1 / (1 + torch.exp(b - a)))
    assert not checks.check_bt_probability(lambda a, b: torch.sigmoid(b - a))
    assert not checks.check_bt_probability(stub)


def test_check_bradley_terry_loss(capsys):
    assert checks.check_bradley_terry_loss(bt_loss_by_hand)
    assert not checks.check_bradley_terry_loss(lambda c, r: -F.logsigmoid(c - r).sum())
    assert not checks.check_bradley_terry_loss(lambda c, r: -F.logsigmoid(r - c).mean())
    assert not checks.check_bradley_terry_loss(stub)
    out = capsys.readouterr().out
    assert out.count("✅") == 1 and out.count("❌") == 2 and out.count("⚠️") == 1


def test_check_bradley_terry_loss_rejects_the_unstable_formula(capsys):
    # log(sigmoid(d)) is -inf once d < about -100 (float32): the checker's wide scales see it
    naive = lambda c, r: -torch.log(torch.sigmoid(c - r)).mean()  # noqa: E731
    assert not checks.check_bradley_terry_loss(naive)
    assert "logsigmoid" in capsys.readouterr().out


def bt_gradient_by_hand(r_c, r_r):
    s = torch.sigmoid(r_r - r_c) / len(r_c)
    return -s, s


def test_bt_gradient_reference_is_the_closed_form():
    gen = torch.Generator().manual_seed(1)
    for _ in range(10):
        r_c, r_r = checks.random_reward_pairs(gen)
        for ref, mine in zip(checks.bt_gradient_reference(r_c, r_r), bt_gradient_by_hand(r_c, r_r)):
            torch.testing.assert_close(ref, mine)


def test_check_bt_gradient(capsys):
    assert checks.check_bt_gradient(bt_gradient_by_hand)
    no_mean = lambda c, r: (-torch.sigmoid(r - c), torch.sigmoid(r - c))  # noqa: E731
    swapped = lambda c, r: tuple(reversed(bt_gradient_by_hand(c, r)))  # noqa: E731
    assert not checks.check_bt_gradient(no_mean)
    assert not checks.check_bt_gradient(swapped)
    assert not checks.check_bt_gradient(stub)
    out = capsys.readouterr().out
    assert out.count("✅") == 1 and out.count("❌") == 2 and out.count("⚠️") == 1


# ---------------------------------------------------------------------------------------
# Lab 03
# ---------------------------------------------------------------------------------------
def test_check_pairwise_accuracy(capsys):
    assert checks.check_pairwise_accuracy(lambda c, r: (c > r).float().mean())
    assert checks.check_pairwise_accuracy(lambda c, r: sum(float(a > b) for a, b in zip(c, r)) / len(c))
    assert not checks.check_pairwise_accuracy(lambda c, r: (c >= r).float().mean())  # ties
    assert not checks.check_pairwise_accuracy(stub)


def test_check_label_smoothing_loss(capsys):
    def smoothed(c, r, eps):
        d = c - r
        return (-(1 - eps) * F.logsigmoid(d) - eps * F.logsigmoid(-d)).mean()
    assert checks.check_label_smoothing_loss(smoothed)
    assert not checks.check_label_smoothing_loss(lambda c, r, eps: bt_loss_by_hand(c, r))
    assert not checks.check_label_smoothing_loss(stub)


def test_check_margin_loss(capsys):
    assert checks.check_margin_loss(lambda c, r, m: -F.logsigmoid(c - r - m).mean())
    assert not checks.check_margin_loss(lambda c, r, m: -F.logsigmoid(c - r + m).mean())
    assert not checks.check_margin_loss(stub)
