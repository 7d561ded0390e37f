"""benchmarks/ppo_scale.py: the toy size runs real PPO iterations and reports every field."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ppo_scale.py"
KEYS = {"name", "params", "batch", "max_new_tokens", "s_per_iter", "tokens_per_s",
        "floor_s_per_iter", "peak_mem_mb"}


def load_script():
    spec = importlib.util.spec_from_file_location("ppo_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ppo_scale"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_toy_size_prints_one_json_line(capsys):
    out = load_script().main(["--sizes", "xs", "--iterations", "1", "--warmup", "1",
                              "--batch", "8", "--max-new-tokens", "6", "--device", "cpu"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == out
    assert out["device"] == "cpu" and len(out["sizes"]) == 1
    row = out["sizes"][0]
    assert KEYS <= set(row)
    assert row["name"] == "xs" and row["batch"] == 8 and row["max_new_tokens"] == 6
    assert 50_000 < row["params"] < 500_000  # the toy xs model, ~0.12M
    # the floor counts model passes only: it cannot exceed the whole iteration
    assert 0 < row["floor_s_per_iter"] <= row["s_per_iter"]
    # at most batch x max_new_tokens response tokens per iteration
    assert 0 < row["tokens_per_s"] <= 8 * 6 / row["s_per_iter"] * 1.01 + 0.1  # (rounding)
    assert row["peak_mem_mb"] > 10


def test_quick_keeps_only_the_quick_sizes_and_bad_names_are_refused(monkeypatch):
    script = load_script()
    ran = []

    def fake_run_size(name, *args):
        ran.append(name)
        return {**dict.fromkeys(KEYS, 1.0), "name": name}

    monkeypatch.setattr(script, "run_size", fake_run_size)
    script.main(["--quick", "--sizes", "xs", "gpt2-100m", "llama-10m"])
    assert ran == ["xs", "llama-10m"]
    with pytest.raises(SystemExit):  # tyro: a message naming the flag, exit code 2
        script.main(["--sizes", "huge"])
