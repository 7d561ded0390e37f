"""Fine-tune a policy with trl's DPOTrainer on preference labels exported by moss-lab.

    moss-lab export-labels --out labels                                   # prompt/chosen/rejected
    python examples/trl/dpo.py --model MODEL --data labels --output_dir dpo
    accelerate launch --num_processes 8 examples/trl/dpo.py --model MODEL --data labels \
        --output_dir dpo --per_device_train_batch_size 4 --learning_rate 5e-7 --beta 0.1

--model   a causal LM folder (save_pretrained, with its tokenizer) or hub id, usually an SFT
          model; the frozen reference is loaded again from the same path
--data    the folder written by `moss-lab export-labels`, or a .jsonl of prompt/chosen/rejected
          records; ties (exported with --include-ties) are dropped
Every trl.DPOConfig field is a flag too (--beta, --loss_type, --max_steps,
--per_device_train_batch_size, --learning_rate, --max_length, ...), or put them in a YAML
file given with --config. The loss (sigmoid) is
    -log sigmoid(beta * [(log pi(y_c) - log pi_ref(y_c)) - (log pi(y_r) - log pi_ref(y_r))]).
The policy and tokenizer are saved in --output_dir.
"""
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import load_dataset, load_from_disk
from trl import DPOConfig, DPOTrainer, TrlParser


@dataclass
class Args:
    model: str = field(metadata={"help": "causal LM folder (save_pretrained) or hub id"})
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
    parser = TrlParser((Args, DPOConfig))
    if not torch.cuda.is_available():  # a laptop: fp32 on the CPU (trl defaults to bf16)
        parser.set_defaults(use_cpu=True, bf16=False)
    args, config = parser.parse_args_and_config()
    # ref_model=None: trl loads the reference from the same path (frozen)
    trainer = DPOTrainer(model=args.model, ref_model=None, args=config,
                         train_dataset=load_pairs(args.data))
    trainer.train()
    trainer.save_model(config.output_dir)  # the policy and its tokenizer
    trainer.accelerator.print(f"policy saved to {config.output_dir}")
    trainer.accelerator.end_training()  # close trackers and the process group (multi-GPU)


if __name__ == "__main__":
    main()
