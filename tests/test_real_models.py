"""Issue 11: real architectures (GPT-2, and Llama with grouped-query attention and RoPE)
through the whole pipeline, offline, on the CPU: reward model on JSONL and HH-RLHF data,
PPO from a prompts file, the library calls of the labs, Label's pair sampling, and the
bad inputs a user will try. The models are tiny and random (tests/real_models.py)."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from real_models import build_real_assets

from moss_lab.cli import main

ARCHS = ["gpt2", "llama"]
SMALL_PPO = ["--iterations", "2", "--batch-size", "8", "--minibatch-size", "8",
             "--max-new-tokens", "8", "--critic-pretrain-steps", "1", "--sample-every", "1"]
PPO_KEYS = {"iteration", "reward/score", "objective/kl", "objective/entropy", "policy/clipfrac",
            "policy/approx_kl", "val/value_loss", "response/length", "time/step_s"}


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    return build_real_assets(tmp_path_factory.mktemp("real-models"))


def cli(*argv) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' load reports, our own notes
        return main([str(a) for a in argv])


@pytest.fixture(scope="session")
def reward_runs(real, tmp_path_factory):
    """A reward model per architecture, trained with `moss-lab train-rm --data`."""
    root = tmp_path_factory.mktemp("rm-runs")
    runs = {}
    for arch in ARCHS:
        out = root / f"rm-{arch}"
        assert cli("train-rm", "--base", real.arch(arch), "--data", real.pairs, "--epochs", 2,
                   "--batch-size", 16, "--warmup-steps", 1, "--out", out) == 0
        runs[arch] = out
    return runs


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_models_are_what_they_claim(real):
    from transformers import AutoConfig

    gpt2, llama = AutoConfig.from_pretrained(real.gpt2), AutoConfig.from_pretrained(real.llama)
    assert gpt2.model_type == "gpt2" and gpt2.n_embd == 64 and gpt2.n_layer == 2
    assert llama.model_type == "llama" and llama.num_key_value_heads < llama.num_attention_heads
    assert not llama.tie_word_embeddings
    assert all(100_000 < n < 300_000 for n in real.params.values())


# ---------------------------------------------------------------------------------------
# The pipeline through the CLI
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_train_rm_on_jsonl_pairs(real, reward_runs, arch):
    from moss_lab.reward import load_reward_model
    from moss_lab.scoring import score

    run = reward_runs[arch]
    rows = read_jsonl(run / "metrics.jsonl")
    assert rows and all("loss" in r for r in rows if "eval/loss" not in r)
    assert json.loads((run / "result.json").read_text())["status"] == "finished"
    rm, tok = load_reward_model(run)
    assert type(rm).__name__.startswith({"gpt2": "GPT2", "llama": "Llama"}[arch])
    assert tok.pad_token_id != tok.eos_token_id
    r = score(rm, tok, ["Human: hi Assistant:"] * 2, [" Sure! Happy to help.", " No."])
    assert r.shape == (2,) and torch.isfinite(r).all()


def test_train_rm_on_hh_rlhf(real, tmp_path):
    out = tmp_path / "rm-hh"
    assert cli("train-rm", "--base", real.llama, "--hh", real.hh, "--epochs", 1,
               "--batch-size", 16, "--out", out) == 0
    assert (out / "model" / "config.json").is_file()
    assert json.loads((out / "result.json").read_text())["n_train"] > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_ppo_from_a_prompts_file(real, reward_runs, arch, tmp_path):
    """Default critic_init="reward": the critic starts as the reward model (same tokenizer)."""
    from transformers import AutoModelForCausalLM

    run = tmp_path / "ppo"
    assert cli("ppo", "--policy", real.arch(arch), "--reward", reward_runs[arch] / "model",
               "--prompts", real.prompts_txt, "--run-dir", run, *SMALL_PPO) == 0
    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2]
    for row in rows:
        assert PPO_KEYS <= set(row) and "reward/gold" not in row  # no gold for real prompts
        assert not any(math.isnan(v) for v in row.values() if isinstance(v, float))
    assert json.loads((run / "config.json").read_text())["critic_init"] == "reward"
    assert json.loads((run / "result.json").read_text())["status"] == "finished"
    samples = read_jsonl(run / "samples.jsonl")
    assert samples and "gold" not in samples[0] and samples[0]["prompt"].startswith("Human:")
    policy = AutoModelForCausalLM.from_pretrained(run / "policy")
    assert policy.config.model_type == arch


def test_ppo_with_jsonl_and_hh_prompts_and_a_policy_critic(real, reward_runs, tmp_path):
    for prompts in (real.prompts_jsonl, real.hh):
        run = tmp_path / prompts.stem
        assert cli("ppo", "--policy", real.llama, "--reward", reward_runs["llama"],
                   "--prompts", prompts, "--critic-init", "policy", "--run-dir", run,
                   *SMALL_PPO) == 0
        assert len(read_jsonl(run / "metrics.jsonl")) == 2
        assert json.loads((run / "config.json").read_text())["critic_init"] == "policy"
    assert read_jsonl(tmp_path / "hh" / "samples.jsonl")[0]["prompt"].endswith("Assistant:")


def test_a_tokenizer_without_pad_token_gets_one_with_a_note(real, tmp_path):
    """GPT-2's tokenizer has no pad token: '<pad>' is added (with a note), at the same id
    for the policy and a reward model from the same base, so critic_init="reward" works."""
    from moss_lab.models import load_policy

    with pytest.warns(UserWarning, match="has no pad token; added '<pad>'"):
        model, tok = load_policy(str(real.nopad), device="cpu")
    assert tok.pad_token == "<pad>" and tok.pad_token_id != tok.eos_token_id
    assert model.get_input_embeddings().num_embeddings == len(tok)
    rm_run = tmp_path / "rm"
    assert cli("train-rm", "--base", real.nopad, "--data", real.pairs, "--epochs", 1,
               "--batch-size", 16, "--out", rm_run) == 0
    run = tmp_path / "ppo"
    assert cli("ppo", "--policy", real.nopad, "--reward", rm_run, "--prompts",
               real.prompts_txt, "--run-dir", run, *SMALL_PPO) == 0
    assert len(read_jsonl(run / "metrics.jsonl")) == 2
    # the saved policy keeps its pad token: loading it again adds nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _, again = load_policy(str(run / "policy"), device="cpu")
    assert again.pad_token_id == tok.pad_token_id


# ---------------------------------------------------------------------------------------
# The library calls of the labs, and Label's pair sampling
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_left_padding_and_positions_agree_with_one_prompt_at_a_time(real, arch):
    """Rollout log-probs of a left-padded batch (and its KV-cached sampling) equal those of
    each sequence alone: position ids count real tokens only, which RoPE needs too."""
    from moss_lab.models import load_policy
    from moss_lab.ppo.rollout import policy_forward, sample, sequence_inputs

    model, tok = load_policy(str(real.arch(arch)), device="cpu")
    prompts = ["Human: hi Assistant:", "Human: How do I bake bread at home? Assistant:"]
    enc = tok(prompts, return_tensors="pt", padding=True)
    assert (enc.attention_mask[0] == 0).any()  # the short prompt is padded
    # a near-zero temperature: the cached sampler picks the argmax
    resp, mask = sample(model, enc.input_ids, enc.attention_mask, 6, tok.eos_token_id,
                        tok.pad_token_id, temperature=1e-4,
                        generator=torch.Generator().manual_seed(0))
    logp, _ = policy_forward(model, sequence_inputs(enc.input_ids, enc.attention_mask, resp,
                                                    mask), resp)
    with torch.no_grad():
        for i, prompt in enumerate(prompts):
            p_ids = tok(prompt).input_ids
            r_ids = resp[i][mask[i].bool()].tolist()
            logits = model(torch.tensor([p_ids + r_ids])).logits[0, len(p_ids) - 1:-1]
            alone = torch.log_softmax(logits, -1).gather(1, torch.tensor(r_ids)[:, None])
            assert r_ids == logits.argmax(-1).tolist()  # the cache path agrees
            assert torch.allclose(logp[i][mask[i].bool()], alone[:, 0], atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_library_calls_of_the_labs(real, reward_runs, arch):
    from moss_lab.models import load_policy
    from moss_lab.reward import load_reward_model
    from moss_lab.sampling import generate
    from moss_lab.scoring import score

    model, tok = load_policy(str(real.arch(arch)), device="cpu")
    assert tok.padding_side == "left" and tok.chat_template
    prompts = ["Human: Why is the sky blue? Assistant:", "Human: hi Assistant:"]
    s = generate(model, tok, prompts, max_new_tokens=6, seed=0)
    assert len(s.responses) == 2 and s.response_ids.shape[0] == 2
    # HF generate on a left-padded batch == each prompt alone (greedy-like)
    batch = generate(model, tok, prompts, max_new_tokens=5, temperature=1e-4, seed=0)
    for i, prompt in enumerate(prompts):
        alone = generate(model, tok, [prompt], max_new_tokens=5, temperature=1e-4, seed=0)
        assert batch.responses[i] == alone.responses[0]
    # prompt + response is exactly the text the policy wrote, also after an HH prompt that
    # ends in "Assistant:" (the response keeps its leading space, as in HH training pairs)
    hh = "\n\nHuman: Why is the sky blue?\n\nAssistant:"
    out = generate(model, tok, [hh] * 4, max_new_tokens=6, seed=0)
    for response, new_ids in zip(out.responses, out.response_ids):
        whole = tok.decode(tok(hh).input_ids + new_ids.tolist(), skip_special_tokens=True)
        assert hh + response == whole.rstrip()
    rm, rm_tok = load_reward_model(reward_runs[arch])
    r = score(rm, rm_tok, prompts, s.responses)
    assert r.shape == (2,) and torch.isfinite(r).all()
    # the score of one pair does not depend on the batch it is padded into
    assert torch.allclose(score(rm, rm_tok, prompts[1:], s.responses[1:]), r[1:], atol=1e-4)


def test_response_text_keeps_the_space_a_prompt_lacks():
    from moss_lab.sampling import response_text

    assert response_text("Human: hi Assistant: ", " cats . ") == "cats ."  # toy: as before
    assert response_text("\n\nHuman: hi\n\nAssistant:", " Sure! \n") == " Sure!"  # HH
    assert response_text("<|im_start|>assistant\n", "Sure") == "Sure"


def test_label_pairs_sampled_from_a_real_policy(real):
    from moss_lab.labels import PairPool

    pool = PairPool(policy=str(real.llama), size=2, max_new_tokens=6, seed=0)
    try:
        pair = pool.get(timeout=60)
    finally:
        pool.close()
    assert pair.response_a != pair.response_b and pair.source_a == str(real.llama)


# ---------------------------------------------------------------------------------------
# Bad input: a clear message, and no run folder claiming a run
# ---------------------------------------------------------------------------------------
def failure(argv, run_dir: Path, capsys) -> str:
    """The message of a CLI call that must fail (raised, or printed with a non-zero code);
    the run folder must not exist afterwards."""
    try:
        rc = cli(*argv)
    except (ValueError, OSError) as err:
        message = str(err)
    else:
        out = capsys.readouterr()
        assert rc != 0, "the command should have failed"
        message = out.out + out.err
    assert not run_dir.exists(), f"left behind: {sorted(p.name for p in run_dir.iterdir())}"
    return " ".join(message.split())


def test_a_folder_that_is_not_a_model(real, reward_runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "run"
    msg = failure(["ppo", "--policy", empty, "--reward", reward_runs["gpt2"], "--prompts",
                   real.prompts_txt, "--run-dir", run], run, capsys)
    assert f"{empty} is not a model folder: it has no config.json" in msg
    assert "save_pretrained" in msg
    msg = failure(["train-rm", "--base", empty, "--data", real.pairs, "--out", run], run, capsys)
    assert "is not a model folder" in msg
    msg = failure(["ppo", "--policy", tmp_path / "no-such", "--prompts", real.prompts_txt,
                   "--run-dir", run], run, capsys)
    assert "does not exist" in msg
    # a causal LM given as the reward model would score with a random head
    msg = failure(["ppo", "--policy", real.gpt2, "--reward", real.gpt2, "--prompts",
                   real.prompts_txt, "--run-dir", run], run, capsys)
    assert "not a reward model" in msg and "moss-lab train-rm --base" in msg


def test_a_reward_model_with_another_tokenizer_and_a_reward_critic(real, tmp_path, capsys):
    rm_run = tmp_path / "rm-other"
    assert cli("train-rm", "--base", real.other_tok, "--data", real.pairs, "--epochs", 1,
               "--batch-size", 16, "--out", rm_run) == 0
    run = tmp_path / "run"
    msg = failure(["ppo", "--policy", real.gpt2, "--reward", rm_run, "--prompts",
                   real.prompts_txt, "--critic-init", "reward", "--run-dir", run], run, capsys)
    assert "tokenizer differs from the policy's" in msg and "--critic-init policy" in msg
    # the advice works: the reward model scores text, whatever its tokenizer
    assert cli("ppo", "--policy", real.gpt2, "--reward", rm_run, "--prompts", real.prompts_txt,
               "--critic-init", "policy", "--run-dir", run, *SMALL_PPO) == 0
    assert len(read_jsonl(run / "metrics.jsonl")) == 2


def test_prompts_files_with_blank_lines_or_too_long_prompts(real, reward_runs, tmp_path, capsys):
    from moss_lab.ppo.config import PPOConfig
    from moss_lab.ppo.setup import prompt_source

    blanks = tmp_path / "blanks.txt"
    blanks.write_text("Human: hi Assistant:\n\n   \nHuman: bye Assistant:\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"skipped 2 blank line\(s\); 2 prompts"):
        draw = prompt_source(PPOConfig(prompts=str(blanks), batch_size=4))
    assert sorted(set(draw(0))) == ["Human: bye Assistant:", "Human: hi Assistant:"]

    long = tmp_path / "long.txt"
    long.write_text("Human: hi Assistant:\n" + "word " * 400 + "\nHuman: ok Assistant:\n",
                    encoding="utf-8")
    run = tmp_path / "run"
    msg = failure(["ppo", "--policy", real.gpt2, "--reward", reward_runs["gpt2"], "--prompts",
                   long, "--run-dir", run], run, capsys)
    assert "1 prompt(s) too long" in msg and "line 2 (" in msg and "--max-new-tokens" in msg

    for text, expected in (("\n\n", "no prompts in"), ('{"text": "hi"}\n', "line 1"),
                           ('{"prompt": "hi"\n', "line 1: bad JSON")):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(text, encoding="utf-8")
        msg = failure(["ppo", "--policy", real.gpt2, "--reward", reward_runs["gpt2"],
                       "--prompts", bad, "--run-dir", run], run, capsys)
        assert expected in msg


def test_lm_term_on_an_untied_model_is_refused_before_the_run_starts(real, tmp_path, capsys):
    run = tmp_path / "run"
    msg = failure(["train-rm", "--base", real.llama, "--data", real.pairs, "--lm-coef", "0.5",
                   "--out", run], run, capsys)
    assert "tied" in msg and "--lm-coef 0" in msg
