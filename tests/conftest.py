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


# The one slow check that the shipped toy models equal a fresh build (~9 min of one core:
# the xs base, the xs-deep base, the reward model on it) starts in a subprocess when the
# session starts and runs on the second core beside the other tests (they use one torch
# thread each); tests/test_shipped_models.py waits for it.
FRESH_BUILD_TEST = "test_a_fresh_build_equals_the_shipped_models"
FRESH_BUILD = """
import torch
torch.set_num_threads(1)
from moss_lab.models import SHIPPED_SIZES, build_toy_model
from moss_lab.ppo import toy
for size in SHIPPED_SIZES:
    build_toy_model(size, seed=0, force=True, progress=False)  # trained, not copied
toy.toy_reward_model_dir("toy", force=True)  # on the xs-deep base just trained
"""


@pytest.fixture(scope="session", autouse=True)
def fresh_toy_build(request, tmp_path_factory):
    """(process, data home) of the background fresh build, or None when the test that
    needs it is not selected."""
    import subprocess
    import sys

    if not any(item.name == FRESH_BUILD_TEST for item in request.session.items):
        yield None
        return
    home = tmp_path_factory.mktemp("fresh-build-home")
    env = {**os.environ, "MOSS_LAB_HOME": str(home), "OMP_NUM_THREADS": "1"}
    log = open(home / "build.log", "w")
    process = subprocess.Popen([sys.executable, "-c", FRESH_BUILD], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    yield process, home
    if process.poll() is None:
        process.kill()
    log.close()
