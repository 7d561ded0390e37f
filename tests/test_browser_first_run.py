"""The first run on a fresh machine is quick and never silent (benchmarks/first_run.py).

`moss-lab app` on an empty data home, opened in chromium: the first pair to label and the
first live PPO point are timed from the page opening. Goals on a quiet laptop: 10 s and
20 s. Other jobs share this machine's two cores while the suite runs, so the test asserts
generous limits and prints the times; the benchmark gives them for the note.
"""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "first_run.py"
LIMITS = {"first_pair_s": 60.0, "first_point_s": 90.0}  # under load; the goals are 10 and 20

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install chromium; .ci/browser-deps does it in CI)"),
]


def toy_rm_name() -> str:
    from moss_lab.ppo import toy

    return f"toy-rm-xs-seed{toy.TOY_RM_SEED}-n{toy.TOY_RM_PAIRS}-v{toy.TOY_RM_VERSION}"


def load_script():
    spec = importlib.util.spec_from_file_location("first_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_first_pair_and_first_ppo_point_on_an_empty_data_home(tmp_path):
    pytest.importorskip("playwright.sync_api")
    from moss_lab.models import SHIPPED_DIR

    home = tmp_path / "fresh-home"
    home.mkdir()
    times = load_script().measure(home)
    print("\nfirst run (measured under load):", json.dumps(times))
    for key, limit in LIMITS.items():
        assert times[key] <= limit, times
    # the models the run used (the base and the reward model; not the reward model's own
    # base, which only a rebuild needs) came from the package, not from a build
    copied = {p.name for p in (home / "models").iterdir()}
    assert {"toy-xs-seed0-v1", toy_rm_name()} <= copied, copied
    for name in copied & {p.name for p in SHIPPED_DIR.glob("toy-*")}:
        assert (home / "models" / name / "model.safetensors").read_bytes() == \
            (SHIPPED_DIR / name / "model.safetensors").read_bytes()
    # while there was no point, the status said what the run was doing
    silent = [s for s in times["ppo_status_seen"]
              if "running · 0 points" in s and " · " not in s.split("0 points", 1)[1]]
    assert not silent, times["ppo_status_seen"]
