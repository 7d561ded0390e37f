"""DPO, GRPO, RLOO (through trl) and best-of-n as runs: each writes the run folder PPO
writes, with the same evaluation (reward/score, reward/gold, objective/kl,
response/length); stop flags, bad input and the CLI commands. Tiny settings: seconds each."""
import json

import pytest
import torch

from moss_lab import preferences
from moss_lab.cli import main
from moss_lab.configs import field_docs
from moss_lab.labels import LabelStore
from moss_lab.methods.best_of_n import analytic_kl
from moss_lab.methods.train_best_of_n import BestOfNConfig, train_best_of_n
from moss_lab.methods.train_dpo import DPOTrainConfig, train_dpo
from moss_lab.methods.train_grpo import GRPOTrainConfig, train_grpo
from moss_lab.methods.train_rloo import RLOOTrainConfig, train_rloo
from moss_lab.methods.training import MethodError
from moss_lab.preferences import Preference
from moss_lab.toyworld import format_prompt

pytest.importorskip("trl")

EVAL = {"max_new_tokens": 8, "eval_prompts": 8, "eval_every": 1, "n_samples": 2}
TINY_ONLINE = {**EVAL, "steps": 2, "prompts_per_step": 2, "group_size": 2}
TINY_DPO = {**EVAL, "pairs": 24, "batch_size": 12, "min_pairs": 16}
EVAL_KEYS = {"step", "episodes", "reward/score", "reward/gold", "objective/kl",
             "response/length", "time/elapsed_s"}
METHODS = {"grpo": (train_grpo, GRPOTrainConfig), "rloo": (train_rloo, RLOOTrainConfig)}


def read_run(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return (json.loads((run_dir / "config.json").read_text()), rows,
            json.loads((run_dir / "result.json").read_text()))


def assert_nothing_written(tmp_path, run_dir):
    assert not run_dir.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".building")]


def pairs_file(path, n, tie=False):
    prompts = [format_prompt(f"tell me about {t} .") for t in ("bees", "tea", "cats", "rain")]
    prefs = [Preference(prompts[i % 4], f"happy to help . {i}", "go away .", tie=tie)
             for i in range(n)]
    preferences.write_jsonl(prefs, path)
    return path


# ------------------------------------------------------------------ every method's run folder

@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_online_run_writes_the_folder(tmp_path, kind):
    train, config_cls = METHODS[kind]
    result = train(config_cls(**TINY_ONLINE), run_dir=tmp_path / "run")
    assert result.status == "finished" and result.steps == 2
    config, rows, final = read_run(tmp_path / "run")
    assert config["kind"] == kind and config["group_size"] == 2
    assert [r["step"] for r in rows] == [0, 1, 2]  # the base model, then every step
    for row in rows:
        assert EVAL_KEYS <= set(row)
    assert rows[0]["objective/kl"] == 0.0  # the base model against itself, same samples
    assert {"train/loss", "train/reward", "train/grad_norm"} <= set(rows[1])
    assert rows[1]["episodes"] == 4  # 2 prompts x a group of 2
    assert final["status"] == "finished" and final["final"]["step"] == 2
    assert (tmp_path / "run" / "policy" / "config.json").is_file()
    samples = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 3 * 2 and "gold" in json.loads(samples[0])


def test_dpo_run_on_simulated_labels(tmp_path):
    seen = []
    result = train_dpo(DPOTrainConfig(**TINY_DPO), run_dir=tmp_path / "run", on_metrics=seen.append)
    assert result.status == "finished" and result.steps == 2
    config, rows, _ = read_run(tmp_path / "run")
    assert config["kind"] == "dpo" and config["n_pairs"] == 24
    assert rows == seen and [r["step"] for r in rows] == [0, 1, 2]
    assert all(EVAL_KEYS <= set(r) for r in rows)
    assert {"train/loss", "train/accuracy", "train/margin"} <= set(rows[1])
    assert abs(rows[1]["train/loss"] - 0.6931) < 0.01  # log 2: policy = reference at step 1
    assert rows[2]["objective/kl"] != 0.0  # the policy moved
    assert (tmp_path / "run" / "policy" / "model.safetensors").is_file()


def test_dpo_reads_a_jsonl_file_and_a_label_store(tmp_path):
    path = pairs_file(tmp_path / "pairs.jsonl", 16)
    result = train_dpo(DPOTrainConfig(**{**TINY_DPO, "data": str(path), "save_final": False}))
    assert result.status == "finished" and result.steps == 2 and result.run_dir is None
    store = LabelStore(tmp_path / "labels.sqlite")
    store.import_file(pairs_file(tmp_path / "more.jsonl", 20))
    store.import_file(pairs_file(tmp_path / "ties.jsonl", 3, tie=True))
    store.close()
    result = train_dpo(DPOTrainConfig(**{**TINY_DPO, "data": str(tmp_path / "labels.sqlite"),
                                         "batch_size": 20}), run_dir=tmp_path / "run")
    config, rows, _ = read_run(tmp_path / "run")
    assert (config["n_pairs"], config["n_ties"]) == (20, 3) and rows[-1]["step"] == 1


def test_best_of_n_ladder(tmp_path):
    result = train_best_of_n(BestOfNConfig(ns=(1, 2, 4), pool=8, eval_prompts=8,
                                           max_new_tokens=8), run_dir=tmp_path / "run")
    assert result.status == "finished" and result.policy is None
    config, rows, final = read_run(tmp_path / "run")
    assert config["kind"] == "best-of-n" and [r["n"] for r in rows] == [1, 2, 4]
    for row in rows:
        assert EVAL_KEYS <= set(row)
        assert row["objective/kl"] == pytest.approx(analytic_kl(row["n"]))
        assert 0.0 <= row["objective/kl_plugin"] <= row["objective/kl"] + 1e-9
    scores = [r["reward/score"] for r in rows]
    assert scores == sorted(scores)  # the best of more candidates (nested) never scores less
    assert final["status"] == "finished"


def test_training_batches_hold_prompts_of_one_token_length(toy_policy):
    """trl 1.16 scores left-padded prompts without position ids: our batches have no padding."""
    _, tokenizer = toy_policy
    seen = []

    def reward(prompts, responses):
        seen.append(prompts)
        return torch.zeros(len(prompts))

    result = train_grpo(GRPOTrainConfig(**{**TINY_ONLINE, "steps": 4, "prompts_per_step": 3}),
                        reward=reward)
    batches = [b for b in seen if len(b) == 6]  # not the evaluation's 8 prompts
    assert result.status == "finished" and len(batches) == 4
    for batch in batches:
        assert len({len(tokenizer(p).input_ids) for p in batch}) == 1


def test_every_config_field_has_a_docstring():
    for cls in (DPOTrainConfig, GRPOTrainConfig, RLOOTrainConfig, BestOfNConfig):
        missing = [name for name, doc in field_docs(cls).items() if not doc]
        assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


# ------------------------------------------------------------------------------ stop flag

def test_should_stop_ends_the_run_and_saves(tmp_path):
    result = train_grpo(GRPOTrainConfig(**{**TINY_ONLINE, "steps": 5}), run_dir=tmp_path,
                        should_stop=lambda: True)
    assert result.status == "stopped" and result.steps == 1
    _, rows, final = read_run(tmp_path)
    assert [r["step"] for r in rows] == [0, 1] and final["status"] == "stopped"
    assert (tmp_path / "policy").is_dir()
    bon = train_best_of_n(BestOfNConfig(ns=(1, 2), pool=2, eval_prompts=4, max_new_tokens=4),
                          should_stop=lambda: True)
    assert bon.status == "stopped" and bon.steps == 0


# ------------------------------------------------------------------------------ bad input

def test_dpo_refuses_too_few_labels_and_only_ties(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(MethodError, match=r"too few preference pairs for DPO: 5 .*at least 16"):
        train_dpo(DPOTrainConfig(**{**TINY_DPO, "data": str(pairs_file(tmp_path / "a.jsonl", 5))}),
                  run_dir=run)
    ties = pairs_file(tmp_path / "b.jsonl", 20, tie=True)
    with pytest.raises(MethodError, match=r"all 20 labels .* are ties"):
        train_dpo(DPOTrainConfig(**{**TINY_DPO, "data": str(ties)}), run_dir=run)
    with pytest.raises(MethodError, match="not found"):
        train_dpo(DPOTrainConfig(**{**TINY_DPO, "data": str(tmp_path / "missing.jsonl")}),
                  run_dir=run)
    assert_nothing_written(tmp_path, run)


def test_group_size_one_is_refused():
    for config_cls in (GRPOTrainConfig, RLOOTrainConfig):
        with pytest.raises(ValueError, match="group_size must be >= 2"):
            config_cls(group_size=1)


def test_nan_reward_stops_with_a_clear_reason(tmp_path):
    def reward(prompts, responses):  # fine in the evaluation, NaN on a training batch
        scores = torch.zeros(len(prompts))
        if len(prompts) == 4:
            scores[1] = float("nan")
        return scores

    result = train_rloo(RLOOTrainConfig(**TINY_ONLINE), run_dir=tmp_path, reward=reward)
    assert result.status == "nan" and "non-finite values (1 of 4)" in result.reason
    _, rows, final = read_run(tmp_path)
    assert [r["step"] for r in rows] == [0] and final["status"] == "nan"
    assert "NaN guard" in final["reason"] and not (tmp_path / "policy").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".building")]


def test_out_of_memory_ends_the_run_with_what_to_change(tmp_path, monkeypatch):
    from moss_lab.methods import training

    calls, real = [], training.LogCallback.on_step_end

    def on_step_end(self, *args, **kwargs):  # the second optimiser step runs out of memory
        calls.append(1)
        if len(calls) == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(training.LogCallback, "on_step_end", on_step_end)
    result = train_rloo(RLOOTrainConfig(**TINY_ONLINE), run_dir=tmp_path, reward="gold")
    assert result.status == "oom"
    assert result.reason.startswith("CUDA out of memory training RLOO: lower prompts_per_step "
                                    "(now 2), group_size (now 2), max_new_tokens (now")
    _, rows, final = read_run(tmp_path)
    assert final["status"] == "oom" and final["reason"] == result.reason
    assert rows and not (tmp_path / "policy").exists()


# ---------------------------------------------------------------------------------- the CLI

@pytest.mark.parametrize("argv", [
    ["grpo", "--steps", "1", "--prompts-per-step", "2", "--group-size", "2"],
    ["rloo", "--steps", "1", "--prompts-per-step", "2", "--group-size", "2"],
    ["dpo", "--pairs", "16", "--batch-size", "16"],
    ["best-of-n", "--ns", "1", "2", "--pool", "2"],
])
def test_cli_commands_run(tmp_path, capsys, argv):
    run = tmp_path / "run"
    code = main(argv + ["--max-new-tokens", "6", "--eval-prompts", "4", "--run-dir", str(run)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "finished" in out and "reward/gold" in out and "best reward/gold" in out
    _, rows, final = read_run(run)
    assert final["status"] == "finished" and all(EVAL_KEYS <= set(r) for r in rows)


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["dpo", "--data", str(pairs_file(tmp_path / "a.jsonl", 3)), "--run-dir", str(run)])
    assert code == 2 and "at least 16 are needed" in capsys.readouterr().err
    assert main(["grpo", "--group-size", "1", "--run-dir", str(run)]) == 2
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())  # tyro draws boxes
    assert "group_size must be >= 2" in err
    assert not run.exists()
