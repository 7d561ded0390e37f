"""Bounds of the config dataclasses (moss_lab.configs): one range per numeric field, one
message naming the field and the range, for the library, the CLI and the app alike."""
import dataclasses
import math

import pytest

from moss_lab.configs import check_value, field_bounds, numeric_fields
from moss_lab.ppo import PPOConfig
from moss_lab.ppo.config import PRESETS
from moss_lab.reward import RewardConfig

CONFIGS = [PPOConfig, RewardConfig]


@pytest.mark.parametrize("cls", CONFIGS)
def test_every_numeric_field_has_bounds(cls):
    fields = numeric_fields(cls)
    assert "lr" in fields and "seed" in fields
    assert set(fields) <= set(cls.BOUNDS), set(fields) - set(cls.BOUNDS)
    assert set(cls.BOUNDS) <= set(fields)  # no bound for a field that does not exist
    for name in fields:
        bound = field_bounds(cls, name)
        assert bound.lo is not None and bound.hi is not None and bound.lo < bound.hi


def test_defaults_and_presets_are_valid():
    RewardConfig()
    PPOConfig()
    for preset in PRESETS.values():
        PPOConfig(**dataclasses.asdict(preset))


@pytest.mark.parametrize("cls", CONFIGS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_are_refused_for_every_numeric_field(cls, bad):
    for name in numeric_fields(cls):
        with pytest.raises(ValueError, match=rf"{name} must be a finite number in [\[(]"):
            cls(**{name: bad})


@pytest.mark.parametrize("cls, name, value, message", [
    (PPOConfig, "iterations", 10**9, "iterations must be in [0, 100000], got 1000000000"),
    (PPOConfig, "max_new_tokens", 10**9, "max_new_tokens must be in [1, 4096], got 1000000000"),
    (PPOConfig, "lr", 0.0, "lr must be in (0, 1], got 0"),
    (PPOConfig, "lr", 1.5, "lr must be in (0, 1], got 1.5"),
    (PPOConfig, "batch_size", 0, "batch_size must be in [1, 4096], got 0"),
    (PPOConfig, "kl_coef", -0.1, "kl_coef must be in [0, 100], got -0.1"),
    (PPOConfig, "reward_clip", 0.0, "reward_clip must be in (0, 1000000], got 0"),
    (RewardConfig, "epochs", 10**9, "epochs must be in [1, 1000], got 1000000000"),
    (RewardConfig, "lr", -1.0, "lr must be in (0, 1], got -1"),
    (RewardConfig, "eval_fraction", 1.0, "eval_fraction must be in [0, 0.9], got 1"),
    (RewardConfig, "batch_size", 2.5, "batch_size must be a whole number in [1, 4096], got 2.5"),
])
def test_out_of_range_is_refused_naming_the_field_and_range(cls, name, value, message):
    with pytest.raises(ValueError) as err:
        cls(**{name: value})
    assert message in str(err.value)
    assert check_value(cls, name, value) == message  # the forms' check: the same words


def test_none_only_where_the_type_allows_it_and_the_edges_are_in():
    PPOConfig(reward_clip=None, kl_target=None, threads=None, iterations=0, lr=1.0, gamma=0)
    RewardConfig(threads=None, eval_fraction=0.0, epochs=1000)
    with pytest.raises(ValueError, match="lr needs a value"):
        PPOConfig(lr=None)
    with pytest.raises(ValueError, match="seed must be a number"):
        RewardConfig(seed="3")


def test_several_problems_are_reported_together():
    with pytest.raises(ValueError) as err:
        PPOConfig(iterations=-1, top_p=2.0)
    assert "iterations must be in" in str(err.value) and "top_p must be in (0, 1]" in str(err.value)
