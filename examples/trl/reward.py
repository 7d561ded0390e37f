"""Train a reward model with trl's RewardTrainer on preference labels exported by moss-lab.

    moss-lab export-labels --out labels                                   # prompt/chosen/rejected
    python examples/trl/reward.py --model MODEL --data labels --output_dir rm
    accelerate launch --num_processes 8 examples/trl/reward.py --model MODEL --data labels \
        --output_dir rm --per_device_train_batch_size 8 --learning_rate 1e-5

--model   a Hugging Face model folder (save_pretrained, with its tokenizer) or hub id; a
          causal LM gets a fresh scalar head (AutoModelForSequenceClassification, 1 label)
--data    the folder written by `moss-lab export-labels`, or a .jsonl of prompt/chosen/rejected
          records; ties (exported with --include-ties) are dropped
Every trl.RewardConfig field is a flag too (--num_train_epochs, --max_steps,
--per_device_train_batch_size, --learning_rate, --max_length, ...), or put them in a YAML
file given with --config. The loss is Bradley-Terry, -log sigmoid(r_chosen - r_rejected);
trl appends <eos> to each prompt + response and reads the score there.
The model and tokenizer are saved in --output_dir: give it to grpo.py --reward_model.
"""
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import load_dataset, load_from_disk
from trl import RewardConfig, RewardTrainer, TrlParser


@dataclass
class Args:
    model: str = field(metadata={"help": "model folder (save_pretrained) or hub id"})
    data: str = field(metadata={"help": "moss-lab export-labels folder, or a .jsonl file"})


def load_pairs(path: str):
    """prompt/chosen/rejected rows, ties left out (a tie says neither response won)."""
    if not Path(path).exists():
        raise SystemExit(f"--data {path} not found: run `moss-lab export-labels --out {path}`")
    if path.endswith(".jsonl"):
        data = load_dataset("json", data_files=path, split="train")
    else:
        data = load_from_disk(path)
    if "tie" in data.column_names:
        data = data.filter(lambda row: not row["tie"])
    return data.select_columns(["prompt", "chosen", "rejected"])


def main():
    parser = TrlParser((Args, RewardConfig))
    if not torch.cuda.is_available():  # a laptop: fp32 on the CPU (trl defaults to bf16)
        parser.set_defaults(use_cpu=True, bf16=False)
    args, config = parser.parse_args_and_config()
    trainer = RewardTrainer(model=args.model, args=config, train_dataset=load_pairs(args.data))
    trainer.train()
    trainer.save_model(config.output_dir)  # the model and its tokenizer
    trainer.accelerator.print(f"reward model saved to {config.output_dir}")
    trainer.accelerator.end_training()  # close trackers and the process group (multi-GPU)


if __name__ == "__main__":
    main()
