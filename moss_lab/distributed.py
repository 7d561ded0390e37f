"""Data parallelism for the PPO and reward-model trainers, in the open (docs/scale_out.md).

W processes (ranks r = 0 .. W-1), started by `accelerate launch` or `torchrun`, each hold a
full copy of the models and take 1/W of every global batch. What makes W processes
compute what one process would on the whole batch:

    gradients     g = (1/W) sum_r g_r            after backward, before clipping (DDP's rule)
    loss weights  w_r = W n_r / sum_r n_r        so that the average of the W local means is
                                                 the mean over the whole batch (n_r: tokens
                                                 or pairs on rank r)
    moments       mean and variance from sums over every rank (advantage whitening)
    metrics       computed on the gathered batch, or averaged over ranks

Every helper is the identity (or a no-op) in a single process, so that a run without a
launcher is bit for bit the run it always was. CleanRL's ppo_atari_multigpu.py averages
gradients the same way; DDP does it with buckets and overlap, which needs every forward
pass to go through its wrapper (the PPO loop calls the critic's body and head apart, and
samples with the policy), so the all-reduce is written here instead.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) in a single process.

    Under a launcher (WORLD_SIZE > 1 in the environment) the first call joins the process
    group: gloo for CPU tensors, NCCL for CUDA tensors, each rank on GPU LOCAL_RANK.
    """
    if not dist.is_available() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        check_launch_config()
        backend = "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            backend = "cpu:gloo,cuda:nccl"
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """True on rank 0, the one process that writes the run folder."""
    return world()[0] == 0


def check_launch_config() -> None:
    """Refuse accelerate configs these trainers do not honour (instead of ignoring them)."""
    for key, name in (("ACCELERATE_USE_DEEPSPEED", "DeepSpeed"), ("ACCELERATE_USE_FSDP", "FSDP")):
        if os.environ.get(key, "").lower() in ("1", "true"):
            raise ValueError(
                f"this accelerate config asks for {name}, but moss-lab's own PPO and reward-"
                "model trainers are data parallel only (each process holds the whole model): "
                "launch them with a plain multi-GPU config (examples/accelerate/ddp.yaml); "
                "for models that do not fit on one GPU see docs/scale_out.md")


def check_divisible(name: str, n: int) -> None:
    """A global batch of n must split into W equal shares."""
    _, size = world()
    if n % size:
        raise ValueError(f"{name} {n} does not split over {size} processes: each process "
                         f"takes an equal share of the global batch, so use a multiple of "
                         f"{size} (e.g. {max(size, n - n % size)})")


def my_share(items: list) -> list:
    """This rank's contiguous block of a global batch:  items[r * n/W : (r + 1) * n/W]."""
    rank, size = world()
    n = len(items) // size
    return items[rank * n:(rank + 1) * n] if size > 1 else items


def my_rows(idx: list) -> list:
    """This rank's rows of a global batch of indices, dealt out in turn:  idx[r::W]
    (empty when the batch has fewer rows than there are processes)."""
    rank, size = world()
    return idx[rank::size] if size > 1 else idx


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """sum_r x_r (a new tensor; x itself alone)."""
    if world()[1] == 1:
        return x
    x = x.detach().clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """(1/W) sum_r x_r."""
    size = world()[1]
    return x if size == 1 else all_reduce_sum(x) / size


def any_true(flag: bool) -> bool:
    """True when any rank says True (a stop request seen by one process stops all)."""
    if world()[1] == 1:
        return bool(flag)
    return bool(all_reduce_sum(torch.tensor([float(bool(flag))])) > 0)


def share(n_local) -> float:
    """The loss weight w_r = W n_r / sum_r n_r of this rank's mean over its n_r items.

    With gradients averaged over ranks, (1/W) sum_r w_r grad(L_r) = sum_r n_r/N grad(L_r):
    the gradient of the mean over all N items, even when the shares hold unequal numbers
    of tokens. 1.0 alone."""
    size = world()[1]
    if size == 1:
        return 1.0
    n = torch.as_tensor(n_local, dtype=torch.float64).detach().cpu().reshape(1)
    total = all_reduce_sum(n)
    return float(size * n / total) if total > 0 else 1.0


def global_moments(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, population variance) of x where mask is 1, over every rank's entries:

        n = sum_r sum(m),   mean = sum_r sum(m x) / n,   var = sum_r sum(m (x - mean)^2) / n

    Alone it is advantages.masked_moments, operation for operation."""
    n = all_reduce_sum(mask.sum())
    mean = all_reduce_sum((x * mask).sum()) / n
    var = all_reduce_sum((((x - mean) * mask) ** 2).sum()) / n
    return mean, var


def average_gradients(module: torch.nn.Module) -> None:
    """g <- (1/W) sum_r g_r for every parameter with a gradient (one flat all-reduce)."""
    size = world()[1]
    if size == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Every rank starts from rank 0's parameters and buffers (as DDP does when it wraps)."""
    if world()[1] == 1:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """The ranks' tensors stacked along dim 0 in rank order; other dims are zero-padded to
    the largest (responses of different lengths). Alone: x."""
    size = world()[1]
    if size == 1:
        return x
    if x.dtype == torch.bool:  # not every backend moves bools
        return gather_rows(x.to(torch.uint8)).bool()
    shape = torch.tensor(list(x.shape), dtype=torch.long)
    shapes = [torch.zeros_like(shape) for _ in range(size)]
    dist.all_gather(shapes, shape)
    biggest = torch.stack(shapes).max(0).values.tolist()
    padded = x.new_zeros(biggest)
    padded[tuple(slice(0, n) for n in x.shape)] = x
    parts = [torch.zeros_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:int(s[0])] for part, s in zip(parts, shapes)])


def gather_list(items: list) -> list:
    """The ranks' lists (e.g. prompts, response texts) concatenated in rank order."""
    size = world()[1]
    if size == 1:
        return items
    parts = [None] * size
    dist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part]


def mean_stats(stats: dict, weight: float = 1.0) -> dict:
    """Weighted mean over ranks of a dict of numbers:  sum_r w_r s_r / sum_r w_r."""
    size = world()[1]
    if size == 1 or not stats:
        return stats
    keys = sorted(stats)
    values = torch.tensor([float(stats[k]) * weight if weight else 0.0 for k in keys]
                          + [float(weight)],
                          dtype=torch.float64)
    total = all_reduce_sum(values)
    return {k: (total[i] / total[-1]).item() for i, k in enumerate(keys)}
