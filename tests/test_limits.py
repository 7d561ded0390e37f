"""Bounds on the work one launch may ask for (moss_lab.limits): the sizes that took a class
server down are refused with the field and its bound; every shipped default passes."""
import dataclasses

import pytest

from moss_lab.limits import LIMITS, check_bounds, problems
from moss_lab.methods.train_best_of_n import BestOfNConfig
from moss_lab.methods.train_dpo import DPOTrainConfig
from moss_lab.methods.train_grpo import GRPOTrainConfig
from moss_lab.methods.train_rloo import RLOOTrainConfig
from moss_lab.ppo import PRESETS
from moss_lab.reward import RewardConfig


def test_a_batch_of_a_billion_is_refused_naming_the_field_and_its_bound():
    with pytest.raises(ValueError, match=r"batch_size must be at most 4096 here, got 1000000000"):
        check_bounds("ppo", {"batch_size": 10**9, "iterations": 3})


@pytest.mark.parametrize("field, value", [("iterations", 10**6), ("steps", "1e9"),
                                          ("max_new_tokens", float("inf")),
                                          ("epochs", 10**4), ("pairs", 10**8)])
def test_runs_that_would_never_end_are_refused(field, value):
    found = problems("any", {field: value})
    assert len(found) == 1 and found[0].startswith(f"{field} must be at most {LIMITS[field]}")


def test_nested_fields_ladders_and_products_are_bounded():
    assert problems("reward", {"reward": {"batch_size": 10**6}, "simulated": 500}) == [
        "batch_size must be at most 4096 here, got 1000000"]
    assert problems("best-of-n", {"ns": (1, 2, 10**6), "pool": 10**6}) == [
        "pool must be at most 4096 here, got 1000000", "ns must be at most 4096 each, got 1000000"]
    found = problems("grpo", {"prompts_per_step": 1024, "group_size": 256})
    assert found == ["prompts_per_step x group_size (responses sampled per step) must be at "
                     "most 8192 here, got 262144"]


def test_every_default_and_preset_passes():
    for preset in PRESETS.values():
        check_bounds("ppo", preset.to_dict())
    for config in (DPOTrainConfig(), GRPOTrainConfig(), RLOOTrainConfig(), BestOfNConfig()):
        check_bounds(type(config).__name__, config.to_dict())
    check_bounds("reward", {"reward": dataclasses.asdict(RewardConfig()), "simulated": 20000})
    assert problems("ppo", {"seed": 10**9, "lr": 3.0, "reward_clip": None}) == []  # not sizes
