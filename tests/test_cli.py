"""The `moss-lab` command line: flags from the config dataclasses (tyro), help from their
field docstrings, clear errors, Ctrl-C, and short end-to-end runs of every command."""
import json
import signal
import sys
import types
import typing
from pathlib import Path

import pytest

import moss_lab.cli
from moss_lab import preferences as prefs
from moss_lab.cli import COMMANDS, main
from moss_lab.cli.stop import StopOnCtrlC
from moss_lab.configs import field_docs, field_help, parse_args
from moss_lab.files import read_jsonl
from moss_lab.ppo.config import PRESETS, PPOConfig
from moss_lab.preferences import Preference
from moss_lab.reward import RewardConfig
from moss_lab.toyworld import sample_prompts


def run(capsys, *argv) -> tuple[int, str]:
    """main(argv): (exit code, stdout + stderr)."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


# ---------------------------------------------------------------------------------------
# help
# ---------------------------------------------------------------------------------------
def test_top_level_help_lists_every_subcommand(capsys):
    code, out = run(capsys, "--help")
    assert code == 0
    for name, (_, help_text) in COMMANDS.items():
        assert f"{name}" in out and help_text in out
    # every command module in moss_lab/cli/ is registered, and nothing else
    folder = Path(moss_lab.cli.__file__).parent
    modules = {f.stem for f in folder.glob("*.py") if "def main(" in f.read_text()} - {"__init__"}
    assert {module for module, _ in COMMANDS.values()} == modules


@pytest.mark.parametrize("command, cls, field", [
    ("ppo", PPOConfig, "kl_coef"), ("train-rm", RewardConfig, "epochs")])
def test_command_help_shows_the_field_docstrings(capsys, command, cls, field):
    code, out = run(capsys, command, "--help")
    assert code == 0
    flat = " ".join(out.replace("│", " ").split())  # tyro draws boxes and wraps lines
    assert "--" + field.replace("_", "-") in flat
    assert " ".join(field_help(cls, field).split()[:4]) in flat


@pytest.mark.parametrize("command", ["pretrain", "app"])
def test_every_command_has_help(capsys, command):
    code, out = run(capsys, command, "--help")
    assert code == 0 and f"moss-lab {command}" in out


def test_every_config_field_has_a_docstring():
    for cls in (PPOConfig, RewardConfig):
        missing = [name for name, doc in field_docs(cls).items() if not doc]
        assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


def test_choices_match_the_presets():
    from moss_lab.cli import ppo, pretrain
    from moss_lab.pretrain import PRESETS as SIZES

    assert set(typing.get_args(typing.get_type_hints(ppo.PPO)["preset"])) == set(PRESETS)
    assert set(typing.get_args(typing.get_type_hints(pretrain.Pretrain)["size"])) == set(SIZES)


# ---------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------
def test_bools_and_optional_fields_parse():
    from moss_lab.cli.ppo import parse

    config = parse(["--no-token-level-kl", "--reward-clip", "none", "--kl-target", "None",
                    "--advantage-clip", "0.5", "--kl-estimator", "k3", "--threads", "2"]).config
    assert (config.token_level_kl, config.reward_clip, config.kl_target, config.advantage_clip,
            config.kl_estimator, config.threads) == (False, None, None, 0.5, "k3", 2)
    assert parse(["--token-level-kl"]).config.token_level_kl is True


def test_train_rm_flags_make_the_config():
    from moss_lab.cli.train_rm import TrainRM

    assert parse_args(TrainRM, []).config == RewardConfig()
    options = parse_args(TrainRM, [
        "--base", "toy-xs-deep", "--no-freeze-embeddings", "--min-lr-ratio", "0",
        "--attn-implementation", "eager", "--lm-coef", "0.5", "--threads", "2",
        "--noise", "0.6", "--pairs", "100"])
    config = options.config
    assert (config.base, config.freeze_embeddings, config.min_lr_ratio, config.attn_implementation,
            config.lm_coef, config.threads) == ("toy-xs-deep", False, 0.0, "eager", 0.5, 2)
    assert (options.noise, options.pairs, options.data) == (0.6, 100, None)


def test_a_preset_keeps_its_values_for_absent_flags():
    from moss_lab.cli.ppo import parse

    assert parse([]).config == PPOConfig()
    for argv in (["--preset", "gpu-small", "--lr", "1e-5"], ["--preset=gpu-small", "--lr=1e-5"]):
        options = parse(argv)
        assert options.preset == "gpu-small"
        assert options.config == PPOConfig.preset("gpu-small", lr=1e-5)
        assert options.config.iterations == PRESETS["gpu-small"].iterations
        assert options.config.iterations != PPOConfig().iterations


@pytest.mark.parametrize("argv, words", [
    (["ppo", "--kl-estimator", "k9"], "k9"),
    (["ppo", "--lr", "-1"], "lr must be in (0, 1], got -1"),  # PPOConfig.__post_init__
    (["ppo", "--preset", "nope"], "nope"),
    (["ppo", "--iterations", "many"], "--iterations"),
    (["train-rm", "--attn-implementation", "flash"], "flash"),
    (["train-rm", "--no-such-flag"], "--no-such-flag"),
    (["no-such-command"], "no-such-command"),
])
def test_a_bad_value_is_a_clear_message_and_exit_code_2(capsys, argv, words):
    code, out = run(capsys, *argv)
    assert code == 2
    assert words in out and "Traceback" not in out


@pytest.mark.parametrize("argv, words", [
    (["ppo", "--iterations", "1000000000"], "iterations must be in [0, 100000], got 1000000000"),
    (["ppo", "--max-new-tokens", "1000000000"], "max_new_tokens must be in [1, 4096]"),
    (["ppo", "--lr", "nan"], "lr must be a finite number in (0, 1], got nan"),
    (["train-rm", "--epochs", "1000000000"], "epochs must be in [1, 1000], got 1000000000"),
])
def test_out_of_bounds_values_exit_2_naming_the_field_and_range(capsys, argv, words):
    """The configs' bounds (moss_lab.configs), checked by __post_init__ under tyro."""
    code, out = run(capsys, *argv)
    assert code == 2 and "Traceback" not in out
    assert words in " ".join(out.replace("│", " ").split())  # tyro wraps it in a box


# ---------------------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------------------
def test_first_ctrl_c_asks_to_stop_the_second_aborts(capsys):
    before = signal.getsignal(signal.SIGINT)
    with StopOnCtrlC("iteration") as stop:
        assert not stop()
        signal.raise_signal(signal.SIGINT)
        assert stop() and stop.requested
        assert "stopping after this iteration (Ctrl-C again to abort)" in capsys.readouterr().out
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


# ---------------------------------------------------------------------------------------
# the commands, end to end (tiny runs)
# ---------------------------------------------------------------------------------------
def test_app_command_passes_its_options_to_launch(monkeypatch, capsys, tmp_path):
    calls = []
    fake = types.ModuleType("moss_lab.app")
    fake.launch = lambda **kw: calls.append(kw)
    monkeypatch.setitem(sys.modules, "moss_lab.app", fake)
    monkeypatch.delenv("MOSS_LAB_AUTH", raising=False)
    login = tmp_path / "login.txt"
    login.write_text("a:b\n")
    assert main(["app", "--host", "0.0.0.0", "--port", "8000", "--share",
                 "--auth-file", str(login)]) == 0
    assert calls == [{"host": "0.0.0.0", "port": 8000, "share": True, "auth": ("a", "b"),
                      "users": None, "processes": True}]
    assert main(["app", "--auth", "a:b"]) == 2 and len(calls) == 1  # a password in `ps`
    monkeypatch.setenv("MOSS_LAB_AUTH", "u:p")
    assert main(["app"]) == 0 and calls[-1]["auth"] == ("u", "p")


def test_pretrain_reports_the_cached_model(capsys):
    code, out = run(capsys, "pretrain")
    assert code == 0 and "base model ready" in out


@pytest.mark.slow
def test_train_rm_trains_and_saves(tmp_path, capsys):
    good = ["cats purr when they are happy .", "cats sleep most of the day .",
            "sure ! cats land on their feet ."]
    bad = ["go away .", "bees can sting .", "i do not care ."]
    prompt = sample_prompts(1, seed=0)[0]
    pairs = [Preference(prompt, good[i % 3], bad[i % 3]) for i in range(30)]
    data = prefs.write_jsonl(pairs, tmp_path / "pairs.jsonl")
    out = tmp_path / "rm"
    code, text = run(capsys, "train-rm", "--data", str(data), "--epochs", "1",
                     "--no-freeze-embeddings", "--attn-implementation", "eager", "--out", str(out))
    assert code == 0 and "reward model saved" in text
    assert "epoch 1  held-out" in text  # the held-out figures after each epoch
    saved = json.loads((out / "config.json").read_text())
    assert saved["freeze_embeddings"] is False and saved["attn_implementation"] == "eager"
    assert (out / "model" / "config.json").is_file()
    assert json.loads((out / "result.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_ppo_runs(tmp_path, capsys):
    code, _ = run(capsys, "ppo", "--iterations", "2", "--batch-size", "8", "--minibatch-size", "8",
                  "--max-new-tokens", "8", "--critic-pretrain-steps", "0", "--reward-clip", "none",
                  "--no-save-final", "--run-dir", str(tmp_path))
    assert code == 0
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 2
    assert json.loads((tmp_path / "config.json").read_text())["reward_clip"] is None
