"""`moss-lab export-labels` and the trl scripts in examples/trl/ (issue #11).

The export is checked against the votes cast, row by row; each example script runs two
optimiser steps on a tiny model in its own process (dpo.py under `accelerate launch`) and
must save a model that loads and differs from the one it started from.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from moss_lab.cli import main as cli
from moss_lab.labels import LabelStore, Pair

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "trl"

# (response_a, response_b, choice): what each vote must export as
VOTES = [("fish swim .", "fish fly .", "A"), ("cats bark .", "cats purr .", "B"),
         ("rain is wet .", "rain is wet !", "tie"), ("bad one .", "bad two .", "both_bad"),
         ("skip me .", "skip you .", "skip"), ("x is y .", "x is z .", "A")]


def cast_votes(store: LabelStore) -> None:
    for i, (a, b, choice) in enumerate(VOTES):
        pair = Pair(f"p{i}", f"Human: question {i} ? Assistant: ", a, b)
        store.record_vote(pair, choice, annotator="ann", shown_left="A")


def expected(include_ties: bool) -> list[dict]:
    """The rows the export must hold, worked out from VOTES directly."""
    rows = []
    for i, (a, b, choice) in enumerate(VOTES):
        prompt = f"Human: question {i} ? Assistant: "
        if choice == "A":
            rows.append({"prompt": prompt, "chosen": a, "rejected": b, "tie": False})
        elif choice == "B":
            rows.append({"prompt": prompt, "chosen": b, "rejected": a, "tie": False})
        elif choice == "tie" and include_ties:
            rows.append({"prompt": prompt, "chosen": a, "rejected": b, "tie": True})
    return rows


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSS_LAB_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.mark.parametrize("include_ties", [False, True])
def test_export_matches_the_votes(home, include_ties):
    from datasets import load_from_disk

    store = LabelStore()  # the data home's label store, what the app writes
    cast_votes(store)
    store.close()
    out = home / "export"
    args = ["export-labels", "--out", str(out)] + (["--include-ties"] if include_ties else [])
    assert cli(args) == 0
    data = load_from_disk(str(out))
    want = expected(include_ties)
    columns = ["prompt", "chosen", "rejected"] + (["tie"] if include_ties else [])
    assert data.column_names == columns
    assert [dict(row) for row in data] == [{k: r[k] for k in columns} for r in want]
    lines = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert [{k: r[k] for k in ("prompt", "chosen", "rejected", "tie")} for r in lines] == want
    assert all(r["annotator"] == "ann" for r in lines)


def test_export_refuses_bad_input_and_writes_nothing(home, capsys):
    missing = home / "nope.sqlite"
    assert cli(["export-labels", "--out", str(home / "a"), "--labels", str(missing)]) == 2
    assert "not found" in capsys.readouterr().err
    assert not missing.exists() and not (home / "a").exists()  # no empty store created

    db = home / "only-bad.sqlite"
    store = LabelStore(db)
    store.record_vote(Pair("q", "Human: q ? Assistant: ", "a .", "b ."), "both_bad", "ann", "A")
    store.close()
    assert cli(["export-labels", "--out", str(home / "b"), "--labels", str(db)]) == 2
    assert "nothing to export" in capsys.readouterr().err
    assert not (home / "b").exists()

    occupied = home / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    store = LabelStore(db)
    cast_votes(store)
    store.close()
    assert cli(["export-labels", "--out", str(occupied), "--labels", str(db)]) == 2
    assert "not an earlier export" in capsys.readouterr().err
    assert sorted(p.name for p in occupied.iterdir()) == ["notes.txt"]

    # an earlier export is replaced: a second export with ties has the tie column
    again = home / "again"
    assert cli(["export-labels", "--out", str(again), "--labels", str(db)]) == 0
    assert cli(["export-labels", "--out", str(again), "--labels", str(db), "--include-ties"]) == 0
    from datasets import load_from_disk

    assert "tie" in load_from_disk(str(again)).column_names


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"trl_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_gold_reward_of_grpo_script_is_the_toy_gold_score():
    from moss_lab import toyworld

    gold = load_example("grpo").gold_reward(eos_token_id=2)
    prompt = toyworld.format_prompt("tell me about cats .")
    response = "sure ! cats purr ."
    ended, cut = gold([prompt] * 2, [f" {response} ", response], [[5, 2], [5, 6]])
    assert ended == pytest.approx(toyworld.gold_score(prompt, response, True).total)
    assert cut == pytest.approx(toyworld.gold_score(prompt, response, False).total)
    assert ended - cut == pytest.approx(2.0)  # the gold score's penalty for no <eos>


# ---------------------------------------------------------------------------------------
# The scripts, in their own processes, on tiny models
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Tiny GPT-2/Llama folders (tests/real_models.py), a reward-model folder, and an export."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from real_models import build_real_assets

    root = tmp_path_factory.mktemp("trl-examples")
    real = build_real_assets(root / "models")
    rm_dir = root / "rm"
    rm = AutoModelForSequenceClassification.from_pretrained(real.gpt2, num_labels=1)
    rm.save_pretrained(rm_dir)
    AutoTokenizer.from_pretrained(real.gpt2).save_pretrained(rm_dir)
    store = LabelStore(root / "labels.sqlite")
    store.import_file(real.pairs)
    store.close()
    assert cli(["export-labels", "--out", str(root / "export"),
                "--labels", str(root / "labels.sqlite")]) == 0
    return {"root": root, "gpt2": real.gpt2, "llama": real.llama, "rm": rm_dir,
            "export": root / "export", "prompts": real.prompts_txt}


def run_script(args: list[str], out: Path) -> None:
    flags = ["--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4",
             "--learning_rate", "1e-3", "--logging_steps", "1", "--save_strategy", "no",
             "--disable_tqdm", "true", "--seed", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(args + flags, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def changed(before: Path, after: Path, cls) -> bool:
    """Did training move the weights the two folders share (a fresh score head left out)?"""
    a, b = cls.from_pretrained(before).state_dict(), cls.from_pretrained(after).state_dict()
    shared = [k for k in a.keys() & b.keys() if not k.startswith("score.")]
    assert shared
    return any(not torch.equal(a[k], b[k]) for k in shared)


@pytest.mark.slow
def test_reward_script_trains_and_saves_a_reward_model(assets):
    from transformers import AutoModelForSequenceClassification

    out = assets["root"] / "out-rm"
    run_script([sys.executable, str(EXAMPLES / "reward.py"), "--model", str(assets["gpt2"]),
                "--data", str(assets["export"])], out)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1
    assert changed(assets["gpt2"], out, AutoModelForSequenceClassification)  # body trained


@pytest.mark.slow
def test_dpo_script_runs_under_accelerate_launch(assets):
    from transformers import AutoModelForCausalLM

    out = assets["root"] / "out-dpo"
    run_script([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes",
                "1", str(EXAMPLES / "dpo.py"), "--model", str(assets["llama"]),
                "--data", str(assets["export"] / "labels.jsonl")], out)
    assert changed(assets["llama"], out, AutoModelForCausalLM)


@pytest.mark.slow
def test_grpo_script_trains_against_a_reward_model_folder(assets):
    from transformers import AutoModelForCausalLM

    out = assets["root"] / "out-grpo"
    run_script([sys.executable, str(EXAMPLES / "grpo.py"), "--model", str(assets["gpt2"]),
                "--prompts", str(assets["prompts"]), "--reward", str(assets["rm"]),
                "--num_generations", "4", "--max_completion_length", "8"], out)
    assert changed(assets["gpt2"], out, AutoModelForCausalLM)
