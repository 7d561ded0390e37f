"""Win rates of two policies (moss_lab.evaluate), the Bradley-Terry leaderboard
(moss_lab.leaderboard) and `moss-lab eval` / `moss-lab board`: the definitions against
hand-made and brute-force references, bad input, and an end-to-end run."""
import itertools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from moss_lab import evaluate as ev
from moss_lab import leaderboard as lb
from moss_lab.cli import main
from moss_lab.leaderboard import BoardError, Outcome

TEST_MODELS = Path(os.environ["MOSS_LAB_HOME"]) / "models"  # conftest's shared data home


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A data home of its own (evals/ starts empty) that shares the cached toy models."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(TEST_MODELS.resolve(), target_is_directory=True)
    monkeypatch.setenv("MOSS_LAB_HOME", str(home))
    return home


def run(capsys, *argv) -> tuple[int, str]:
    """main(argv): (exit code, stdout + stderr)."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    run.stdout = out.out
    return code, out.out + out.err


def last_json() -> dict:
    """The final line of the last command's stdout, as JSON (the CLI's contract)."""
    return json.loads(run.stdout.strip().splitlines()[-1])


def stored(home: Path) -> list[Path]:
    return sorted((home / "evals").glob("*")) if (home / "evals").is_dir() else []


# ---------------------------------------------------------------------------------------
# verdicts, rates, bootstrap, agreement
# ---------------------------------------------------------------------------------------
def test_verdicts_and_rates_of_a_hand_made_list():
    a = [1.0, 2.0, 3.0, 3.0, 0.0, 0.1 + 0.2]
    b = [0.0, 2.0, 4.0, 3.0 + 1e-9, 1.0, 0.3]  # 0.1 + 0.2 != 0.3 in floats: still a tie
    v = ev.verdicts(a, b)
    assert v.tolist() == [1, 0, -1, 0, -1, 0]
    r = ev.rates(v)
    assert (r["n"], r["wins"], r["ties"], r["losses"]) == (6, 1, 3, 2)
    assert r["win_rate"] == pytest.approx(1 / 6) and r["tie_rate"] == pytest.approx(3 / 6)
    assert r["loss_rate"] == pytest.approx(2 / 6) and r["margin"] == pytest.approx(-1 / 6)
    assert ev.verdicts([1.0], [0.5], tol=0.5).tolist() == [0]  # within the tolerance: a tie
    with pytest.raises(ev.EvalError):
        ev.rates([])


def test_bootstrap_matches_the_exact_bootstrap_distribution():
    """x = [0, 0, 1, 1, 1]: a resampled mean is k/5 with k ~ Binomial(5, 0.6); the exact
    (enumerated) 2.5% and 97.5% quantiles are 0.2 and 1.0."""
    x = [0, 0, 1, 1, 1]
    means = sorted(np.mean([x[i] for i in idx]) for idx in itertools.product(range(5), repeat=5))
    exact = [means[math.ceil(0.025 * len(means)) - 1], means[math.ceil(0.975 * len(means)) - 1]]
    assert exact == [0.2, 1.0]
    assert ev.bootstrap_ci(x, n_resamples=4000, seed=1).tolist() == pytest.approx(exact)


def test_bootstrap_of_a_bernoulli_sample_is_close_to_the_normal_and_wilson_intervals():
    n, p = 400, 0.3
    x = np.array([1] * int(n * p) + [0] * int(n * (1 - p)))
    lo, hi = ev.bootstrap_ci(x, n_resamples=4000, seed=0)
    half = 1.96 * math.sqrt(p * (1 - p) / n)  # Wald: 0.0449
    z = 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    wilson = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # within a lattice step or so (resampled means are multiples of 1/400 = 0.0025)
    assert lo == pytest.approx(p - half, abs=0.004) and hi == pytest.approx(p + half, abs=0.004)
    assert lo == pytest.approx(centre - wilson, abs=0.005) and hi == pytest.approx(centre + wilson, abs=0.005)
    # seeded: the same interval twice; columns are resampled together
    assert ev.bootstrap_ci(x, 500, seed=3).tolist() == ev.bootstrap_ci(x, 500, seed=3).tolist()
    both = ev.bootstrap_ci(np.stack([x, 1 - x], axis=1), 500, seed=3)
    assert both[1].tolist() == pytest.approx([1 - both[0][1], 1 - both[0][0]])


def test_summarize_reports_every_rate_with_an_interval():
    v = [1] * 50 + [0] * 30 + [-1] * 20
    s = ev.summarize(v, n_resamples=1000)
    assert (s["win_rate"], s["tie_rate"], s["loss_rate"], s["margin"]) == (0.5, 0.3, 0.2, 0.3)
    for key in ("win_rate", "tie_rate", "loss_rate", "margin"):
        lo, hi = s[f"{key}_ci95"]
        assert lo < s[key] < hi
    assert s["win_rate_ci95"][1] - s["win_rate_ci95"][0] == pytest.approx(2 * 1.96 * 0.05, abs=0.03)


def test_agreement_handles_ties_explicitly():
    g = ev.agreement([1, 1, 0, -1, -1, 0], [1, 0, 0, -1, 1, 1], n_resamples=200)
    assert g["agreement"] == pytest.approx(3 / 6)           # a tie vs a win disagrees
    assert g["decisive"] == 3 and g["decisive_agreement"] == pytest.approx(2 / 3)
    assert g["confusion"]["a"] == {"a": 1, "tie": 1, "b": 0}
    assert g["confusion"]["tie"] == {"a": 1, "tie": 1, "b": 0}
    assert g["confusion"]["b"] == {"a": 1, "tie": 0, "b": 1}
    assert ev.agreement([0, 0], [1, -1], n_resamples=200)["decisive_agreement"] is None


# ---------------------------------------------------------------------------------------
# the Bradley-Terry leaderboard
# ---------------------------------------------------------------------------------------
def outcomes(pairs: dict) -> list[Outcome]:
    """{(a, b, winner): count} -> a list of outcomes."""
    return [Outcome(a, b, w) for (a, b, w), k in pairs.items() for _ in range(k)]


def test_two_models_match_the_closed_form():
    """theta_1 - theta_2 = ln(W_12 / W_21): 30 wins to 10 is ln 3, 191 Elo points; so are
    10 wins, 10 ties and no loss (a tie is half a win each: 15 to 5)."""
    expected = 400 / math.log(10) * math.log(3)
    for data in ({("toy", "ppo", "b"): 30, ("toy", "ppo", "a"): 10},
                 {("ppo", "toy", "a"): 10, ("toy", "ppo", "tie"): 10}):
        r = lb.fit_ratings(outcomes(data), anchor="toy", l2=0.0)
        assert r["toy"] == 1000.0
        assert r["ppo"] - r["toy"] == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(190.85, abs=0.01)


def brute_force_theta(W: np.ndarray, l2: float, steps: int = 40000, lr: float = 2e-3) -> np.ndarray:
    """Plain gradient ascent on the penalised log-likelihood, its gradient written out
    term by term (no Newton, no vectorised formula shared with the library)."""
    m = len(W)
    theta = np.zeros(m)
    for _ in range(steps):
        grad = -l2 * theta
        for i in range(m):
            for j in range(m):
                p = 1 / (1 + math.exp(-(theta[i] - theta[j])))
                grad[i] += W[i, j] * (1 - p)   # d/dtheta_i of W_ij log sigma(theta_i - theta_j)
                grad[j] -= W[i, j] * (1 - p)
        theta += lr * grad
    return theta


def test_the_fit_matches_gradient_ascent_and_recovers_the_strengths():
    rng = np.random.default_rng(0)
    names = ["toy", "m1", "m2", "m3"]
    true = np.array([0.0, 0.5, 1.0, -0.7])
    data = []
    for _ in range(600):
        i, j = rng.choice(4, size=2, replace=False)
        p = 1 / (1 + math.exp(-(true[i] - true[j])))
        u = rng.random()
        data.append(Outcome(names[i], names[j], "tie" if abs(u - p) < 0.05 else ("a" if u < p else "b")))
    models = sorted(names)
    W = lb.win_matrix(data, models)
    theta = lb.fit_theta(W, l2=0.05)
    assert theta == pytest.approx(brute_force_theta(W, 0.05), abs=1e-4)
    assert lb.log_likelihood(theta, W, 0.05) >= lb.log_likelihood(theta + 0.01 * rng.normal(size=4), W, 0.05)
    board = lb.leaderboard(data, anchor="toy", l2=0.0, n_resamples=300)
    assert [r["model"] for r in board] == ["m2", "m1", "toy", "m3"]
    by = {r["model"]: r for r in board}
    assert by["toy"]["rating"] == 1000.0 and by["toy"]["rating_ci95"] == [1000.0, 1000.0]
    for name, t in zip(names, true):
        lo, hi = by[name]["rating_ci95"]
        assert lo - 1e-9 <= 1000 + lb.ELO_SCALE * t <= hi + 1e-9, name
    assert sum(r["games"] for r in board) == 2 * len(data)
    assert all(r["wins"] + r["ties"] + r["losses"] == r["games"] for r in board)


def test_an_unbeaten_model_needs_the_prior():
    data = outcomes({("toy", "ppo", "b"): 20, ("toy", "m", "tie"): 3})
    with pytest.raises(BoardError, match="no finite"):
        lb.fit_ratings(data, l2=0.0)
    r = lb.fit_ratings(data, l2=0.01)
    assert math.isfinite(r["ppo"]) and r["ppo"] > r["toy"] + 300
    for bad in ([], outcomes({("toy", "toy", "a"): 1}), [Outcome("toy", "ppo", "x")]):
        with pytest.raises(BoardError):
            lb.fit_ratings(bad)


# ---------------------------------------------------------------------------------------
# the command line: bad input, then an end-to-end comparison and board
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["--a", "toy", "--b", "toy"], "same policy"),
    (["--a", "toy", "--b", "toy-xs"], "same policy"),
    (["--b", "toy-s", "--prompts", "0"], "between 1 and 10,000"),
    (["--b", "toy-s", "--prompts", "1000000"], "between 1 and 10,000"),
    (["--b", "/no/such/checkpoint"], "not found"),
    (["--b", "toy-s", "--judge", "oracle"], "judge must be gold, rm or people"),
])
def test_bad_input_is_refused_with_exit_2_and_nothing_stored(capsys, home, argv, words):
    code, out = run(capsys, "eval", *argv)
    assert code == 2
    assert words in " ".join(out.replace("│", " ").split())
    assert stored(home) == []


def test_a_folder_without_a_policy_is_refused(capsys, home, tmp_path):
    run_dir = tmp_path / "ppo-unfinished"  # a run's own config.json, no policy/ saved
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"iterations": 2}))
    code, out = run(capsys, "eval", "--b", run_dir)
    assert code == 2 and "holds no policy" in out
    assert stored(home) == []


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    """A tiny PPO run folder (its policy in policy/)."""
    from moss_lab.ppo import train_ppo
    from moss_lab.ppo.config import PPOConfig

    run_dir = tmp_path_factory.mktemp("ppo-run")
    train_ppo(PPOConfig(iterations=2, reward="gold", batch_size=16, minibatch_size=16),
              run_dir=run_dir)
    return run_dir


def test_eval_end_to_end_then_the_board(capsys, home, ppo_run):
    code, out = run(capsys, "eval", "--a", "toy", "--b", ppo_run, "--prompts", 20,
                    "--judge", "gold,rm", "--name", "e2e", "--bootstrap", 500)
    assert code == 0, out
    s = last_json()
    assert s["a"] == "toy" and s["b"] == str((ppo_run / "policy").resolve())
    assert s["n"] == 20 and s["judge"] == "gold" and s["judges"] == ["gold", "rm"]
    for r in s["by_judge"].values():
        assert r["win_rate"] + r["tie_rate"] + r["loss_rate"] == pytest.approx(1.0)
        lo, hi = r["win_rate_ci95"]
        assert 0 <= lo <= r["win_rate"] <= hi <= 1
        assert r["wins"] + r["ties"] + r["losses"] == 20
    assert s["win_rate"] == s["by_judge"]["gold"]["win_rate"]
    g = s["agreement"]["gold~rm"]
    assert 0 <= g["agreement"] <= 1 and g["n"] == 20
    assert sum(sum(row.values()) for row in g["confusion"].values()) == 20

    rows = [json.loads(line) for line in Path(s["saved"]).read_text().splitlines()]
    assert Path(s["saved"]) == home / "evals" / "e2e.jsonl" and len(rows) == 40
    assert {r["judge"] for r in rows} == {"gold", "rm"}
    gold_rows = [r for r in rows if r["judge"] == "gold"]
    assert sum(r["winner"] == "a" for r in gold_rows) == s["wins"]

    # the same name again is refused before anything runs; the stored file is untouched
    code, out = run(capsys, "eval", "--b", ppo_run, "--prompts", 20, "--name", "e2e")
    assert code == 2 and "exists already" in out
    assert len(Path(s["saved"]).read_text().splitlines()) == 40

    code, out = run(capsys, "board", "--judge", "gold", "--bootstrap", 200)
    assert code == 0, out
    board = last_json()
    assert board["judgements"] == 20 and board["anchor"] == "toy"
    by = {m["model"]: m for m in board["models"]}
    assert by["toy"]["rating"] == 1000.0 and by["toy"]["games"] == 20
    assert by[s["b"]]["label"] == ppo_run.name
    assert by[s["b"]]["wins"] == s["losses"] and by[s["b"]]["ties"] == s["ties"]


def test_an_interrupted_eval_stores_nothing(capsys, home, ppo_run, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "rm_judge", interrupted)
    code, _ = run(capsys, "eval", "--b", ppo_run, "--prompts", 4, "--judge", "gold,rm")
    assert code == 130 and stored(home) == []
    code, out = run(capsys, "board")
    assert code == 1 and "no gold judgements" in out


def test_every_flag_has_a_docstring():
    from moss_lab.cli.board import Board
    from moss_lab.cli.eval import Eval
    from moss_lab.configs import field_docs

    for cls in (Eval, Board):
        assert all(field_docs(cls).values()), cls.__name__
