"""Test settings: never touch the network; one shared data home for the base model."""
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# The toy base and reward models (shipped in the package, tests/test_shipped_models.py
# checks them against a fresh build) are copied into this folder before the first test and
# reused by every test; tests that write labels or runs use their own tmp_path homes.
os.environ.setdefault("MOSS_LAB_HOME", str(Path(__file__).resolve().parents[1] / ".moss-lab-test-home"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy_policy():
    """The embedded base model and tokenizer (built on first use)."""
    from moss_lab.models import load_policy

    return load_policy("toy")


@pytest.fixture(scope="session", autouse=True)
def toy_base_model_built():
    """The toy base and reward models in the data home before any test runs (a copy of the
    shipped ones: a second), so that no test, and no app request with its own timeout,
    waits for them."""
    from moss_lab.models import build_toy_model
    from moss_lab.ppo.toy import toy_reward_model_dir

    build_toy_model("xs")
    toy_reward_model_dir("toy")
