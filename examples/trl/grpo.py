"""Fine-tune a policy with trl's GRPOTrainer against a reward model (or the toy world's gold).

    python examples/trl/grpo.py --model MODEL --prompts prompts.txt --reward rm --output_dir grpo
    accelerate launch --num_processes 8 examples/trl/grpo.py --model MODEL --prompts prompts.txt \
        --reward rm --output_dir grpo --per_device_train_batch_size 8 --num_generations 8
    python examples/trl/grpo.py --model toy-policy --prompts toy --reward gold --output_dir grpo

--model    a causal LM folder (save_pretrained, with its tokenizer) or hub id; with --beta > 0
           the frozen reference is loaded again from the same path
--prompts  a .txt file (one prompt per line), a .jsonl file ({"prompt": ...} per line), a
           `moss-lab export-labels` folder (its distinct prompts), or "toy" (toy-world prompts)
--reward   a reward-model folder (examples/trl/reward.py, moss-lab train-rm's model/): trl
           loads it as AutoModelForSequenceClassification and scores prompt + completion;
           or "gold": the toy world's true score, an ORACLE for teaching (needs moss_lab)
Every trl.GRPOConfig field is a flag too (--num_generations, --max_completion_length, --beta,
--max_steps, --learning_rate, ...), or put them in a YAML file given with --config. Each
prompt gets num_generations completions; a completion's advantage is its reward minus its
group's mean, divided by the group's std. The policy is saved in --output_dir.
"""
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset, load_from_disk
from trl import GRPOConfig, GRPOTrainer, TrlParser


@dataclass
class Args:
    model: str = field(metadata={"help": "causal LM folder (save_pretrained) or hub id"})
    prompts: str = field(metadata={"help": ".txt, .jsonl, an export-labels folder, or 'toy'"})
    reward: str = field(metadata={"help": "reward-model folder, or 'gold' (toy world oracle)"})
    toy_prompts: int = field(default=1024, metadata={"help": "--prompts toy: how many"})


def load_prompts(spec: str, n_toy: int) -> Dataset:
    """A dataset with one column, prompt."""
    if spec == "toy":
        from moss_lab.toyworld import sample_prompts

        prompts = sample_prompts(n_toy, seed=0)
    elif not Path(spec).exists():
        raise SystemExit(f"--prompts {spec} not found: give a .txt or .jsonl file, an "
                         "export-labels folder, or 'toy'")
    elif Path(spec).is_dir():
        prompts = sorted(set(load_from_disk(spec)["prompt"]))
    elif spec.endswith(".jsonl"):
        prompts = Dataset.from_json(spec)["prompt"]
    else:
        prompts = [line for line in Path(spec).read_text(encoding="utf-8").splitlines()
                   if line.strip()]
    return Dataset.from_dict({"prompt": prompts})


def gold_reward(eos_token_id: int):
    """The toy world's true score of each completion (-2 when it never reached <eos>)."""
    from moss_lab.toyworld import gold_score

    def gold(prompts, completions, completion_ids, **kwargs) -> list[float]:
        return [gold_score(p, c.strip(), ended=eos_token_id in ids).total
                for p, c, ids in zip(prompts, completions, completion_ids)]

    return gold


def main():
    parser = TrlParser((Args, GRPOConfig))
    if not torch.cuda.is_available():  # a laptop: fp32 on the CPU (trl defaults to bf16)
        parser.set_defaults(use_cpu=True, bf16=False)
    args, config = parser.parse_args_and_config()
    if args.reward == "gold":
        from transformers import AutoTokenizer

        reward = gold_reward(AutoTokenizer.from_pretrained(args.model).eos_token_id)
    else:
        reward = args.reward  # a path: trl loads the reward model (on every process)
    trainer = GRPOTrainer(model=args.model, reward_funcs=reward, args=config,
                          train_dataset=load_prompts(args.prompts, args.toy_prompts))
    trainer.train()
    trainer.save_model(config.output_dir)  # the policy and its tokenizer
    trainer.accelerator.print(f"policy saved to {config.output_dir}")
    trainer.accelerator.end_training()  # close trackers and the process group (multi-GPU)


if __name__ == "__main__":
    main()
