"""The toy models the package ships (moss_lab/assets) are what the library builds.

One fresh build from scratch (the xs base model, the xs-deep base, then the toy reward
model on xs-deep: ~9 min on one core, in a subprocess that tests/conftest.py starts with
the session) in an empty data home, compared tensor by tensor with the shipped copies.
On the machine that shipped them the build is bit-identical (one thread, fixed seeds).
Another CPU rounds differently in its kernels, and 1250 pretraining steps amplify that:
on the 2026-12-02 machine the xs base came out 0.02 away (max |difference|; final loss
equal to 3e-5, greedy samples equal on 29 of 32 prompts), so the reward model saw other
samples and differs too (held-out gold agreement 0.865 against the shipped 0.873). There
the test asks for models as good as the shipped ones instead: the same final pretraining
loss and held-out agreement with gold within a tolerance. A failure means the toy world,
the recipe or a version changed: run `python tools/ship_toy_models.py`.
"""
import json

import pytest
from safetensors.torch import load_file

from moss_lab.models import INFO_FILE, SHIPPED_DIR, SHIPPED_SIZES, build_toy_model, toy_model_dir
from moss_lab.ppo import toy

LOSS_TOLERANCE = 1e-3  # |final pretraining loss, fresh - shipped| on another CPU
GOLD_TOLERANCE = 0.03  # |held-out gold agreement, fresh - shipped| on another CPU
REBUILD = "rebuild the shipped models: python tools/ship_toy_models.py"


def compare_weights(fresh_dir, shipped_dir) -> float:
    """The largest |difference| over all tensors (names and shapes must match)."""
    fresh = load_file(fresh_dir / "model.safetensors")
    shipped = load_file(shipped_dir / "model.safetensors")
    assert fresh.keys() == shipped.keys(), REBUILD
    worst = 0.0
    for name, tensor in fresh.items():
        assert tensor.shape == shipped[name].shape, f"{name}: {REBUILD}"
        worst = max(worst, (tensor - shipped[name]).abs().max().item())
    return worst


def same_files(fresh_dir, shipped_dir, names) -> None:
    for name in names:
        assert (fresh_dir / name).read_text() == (shipped_dir / name).read_text(), \
            f"{name} differs: {REBUILD}"


def test_the_shipped_models_are_named_for_this_version():
    for size in SHIPPED_SIZES:
        base = SHIPPED_DIR / toy_model_dir(size, 0).name
        assert (base / INFO_FILE).is_file(), f"no shipped {base.name}: {REBUILD}"
    shipped_rm = [p.name for p in SHIPPED_DIR.glob("toy-rm-*")]
    assert shipped_rm == [f"toy-rm-xs-seed{toy.TOY_RM_SEED}-n{toy.TOY_RM_PAIRS}-"
                          f"v{toy.TOY_RM_VERSION}"], REBUILD


def test_a_fresh_data_home_gets_the_shipped_copies_at_once(tmp_path, monkeypatch):
    import time

    from moss_lab.models import load_policy

    monkeypatch.setenv("MOSS_LAB_HOME", str(tmp_path))
    start = time.perf_counter()
    folders = [build_toy_model(size, progress=False) for size in SHIPPED_SIZES]
    folders.append(toy.toy_reward_model_dir("toy"))
    took = time.perf_counter() - start
    for folder in folders:
        shipped = SHIPPED_DIR / folder.name
        assert folder.parent == tmp_path / "models"
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in shipped.iterdir())
        for path in shipped.iterdir():
            assert (folder / path.name).read_bytes() == path.read_bytes()
    assert took < 5, f"copying the shipped models took {took:.1f} s"  # a build takes minutes
    model, _ = load_policy("toy", device="cpu")
    assert model.num_parameters() == json.loads((folders[0] / INFO_FILE).read_text())["params"]
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".building")]


@pytest.mark.slow
def test_a_fresh_build_equals_the_shipped_models(fresh_toy_build):
    # the build runs in a subprocess started with the session (tests/conftest.py), beside
    # the other tests; here we wait for it and compare
    process, home = fresh_toy_build
    assert process.wait(timeout=1800) == 0, (home / "build.log").read_text()[-3000:]
    bases = [home / "models" / toy_model_dir(size, 0).name for size in SHIPPED_SIZES]
    rm = next((home / "models").glob("toy-rm-*"))
    diffs = {}
    for fresh in [*bases, rm]:
        shipped = SHIPPED_DIR / fresh.name
        same_files(fresh, shipped, ["config.json", "tokenizer.json", "tokenizer_config.json"])
        diffs[fresh.name] = compare_weights(fresh, shipped)
    print("\nmax |fresh - shipped|: "
          + ", ".join(f"{name} {diff:.3g}" for name, diff in diffs.items()))
    shipped_rm = SHIPPED_DIR / rm.name
    infos = [json.loads((folder / toy.RM_INFO_FILE).read_text()) for folder in (rm, shipped_rm)]
    for info in infos:
        info["metrics"].pop("seconds")  # the build's time: the one field that may differ
    if not any(diffs.values()):
        assert infos[0] == infos[1], REBUILD  # held-out accuracy etc.
        return  # bit-identical (the machine that shipped them)
    # not bit-identical (another CPU's kernels): the models must be as good
    for fresh in bases:
        losses = [json.loads((folder / INFO_FILE).read_text())["final_loss"]
                  for folder in (fresh, SHIPPED_DIR / fresh.name)]
        assert abs(losses[0] - losses[1]) < LOSS_TOLERANCE, (fresh.name, losses, REBUILD)
    gold = [info["metrics"]["acc_gold"] for info in infos]
    assert abs(gold[0] - gold[1]) < GOLD_TOLERANCE, (gold, REBUILD)
    assert {k: v for k, v in infos[0].items() if k != "metrics"} == \
        {k: v for k, v in infos[1].items() if k != "metrics"}, REBUILD  # the same recipe


def test_the_toy_reward_model_agrees_with_gold_on_fresh_pairs(toy_policy):
    """Issue #10 point 7: the reward model PPO and the labs use by default orders >= 0.85
    of its own held-out pairs like gold (rm_info.json, benchmarks/reward_model.py's
    default setup), and as many of 400 pairs it never saw (measured 0.873; the 2-layer
    v3 model: 0.751)."""
    from moss_lab.preferences import toy_pairs
    from moss_lab.reward import evaluate_reward_model, load_reward_model
    from moss_lab.toyworld import SimulatedAnnotator

    folder = toy.toy_reward_model_dir("toy")
    info = json.loads((folder / toy.RM_INFO_FILE).read_text())
    assert info["base"] == "toy-xs-deep" and info["metrics"]["acc_gold"] >= 0.85, info
    pairs = toy_pairs(*toy_policy, 400, SimulatedAnnotator(0.6, seed=778), seed=777)
    quality = evaluate_reward_model(*load_reward_model(folder), pairs)
    assert quality["acc_gold"] >= 0.84, quality  # 0.873 - 2 standard errors (0.017)
