"""Choosing the device, the CPU thread count and the precision of the forward passes."""
from __future__ import annotations

import contextlib

import torch

GIB = 2**30


def pick_device(device: str | None = None) -> torch.device:
    """The device to use: the one asked for, else cuda, then mps, then cpu.

    Asking for a device that is not here is a ValueError that says what to do (torch's own
    message, "Torch not compiled with CUDA enabled", comes much later and says neither).
    """
    if device and device != "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} needs a CUDA GPU, and torch sees none here; "
                             "use --device cpu (device='cpu') to run it on the CPU anyway "
                             "(slowly), or run it on a machine with a GPU")
        if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: there are {torch.cuda.device_count()} CUDA "
                             f"GPUs here (cuda:0 ... cuda:{torch.cuda.device_count() - 1})")
        if dev.type == "mps" and not _mps_available():
            raise ValueError(f"device {device!r} needs Apple's MPS, which is not available "
                             "here; use --device cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def available_devices() -> list[tuple[str, str]]:
    """(label, value) of every device here: ("cpu", "cpu"), then one per GPU, e.g.
    ("cuda:0 — NVIDIA A100-SXM4-80GB, 79.2 GiB", "cuda:0"), then MPS when present."""
    out = [("cpu", "cpu")]
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        props = torch.cuda.get_device_properties(i)
        out.append((f"cuda:{i} — {props.name}, {props.total_memory / GIB:.1f} GiB", f"cuda:{i}"))
    if _mps_available():
        out.append(("mps (Apple GPU)", "mps"))
    return out


def device_memory_gib(device: torch.device | str) -> float | None:
    """Total memory of a CUDA GPU in GiB; None for the CPU and MPS (shared memory)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(device.index or 0).total_memory / GIB


# ---------------------------------------------------------------------------------------
# Precision: bf16 autocast for the forwards, fp32 for everything that is learned or summed
# ---------------------------------------------------------------------------------------
def compute_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """The dtype of the forward passes: bf16 when asked, or with "auto" on a CUDA GPU that
    supports it (Ampere and later); fp32 otherwise. The CPU runs bf16 too when asked (slower
    than fp32 on most CPUs: a way to test the bf16 path, not to speed up)."""
    device = torch.device(device)
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def autocast(device: torch.device | str, dtype: torch.dtype):
    """Context for a forward pass: torch.autocast to `dtype` (matmuls in bf16, reductions
    such as softmax and log_softmax kept in fp32 by autocast itself); a no-op for fp32, so
    an fp32 run is exactly the run without this context."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def out_of_memory_kind(err: BaseException) -> str | None:
    """"CUDA", "MPS" or "CPU" for an out-of-memory error of that device, else None."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return "CUDA"
    if isinstance(err, MemoryError):
        return "CPU"
    if isinstance(err, RuntimeError):
        if "MPS backend out of memory" in str(err):
            return "MPS"
        if "DefaultCPUAllocator: can't allocate memory" in str(err):
            return "CPU"
    return None


def is_out_of_memory(err: BaseException) -> bool:
    """A CUDA, MPS or CPU out-of-memory error."""
    return out_of_memory_kind(err) is not None


def set_cpu_threads(n_params: int, threads: int | None = None) -> int:
    """Set torch's CPU thread count and return it.

    Tiny models gain nothing from a second thread, and on a 2-core laptop with anything
    else busy (a browser, the Gradio server) two threads made steps 40-50x slower. So
    models under 5M parameters get 1 thread unless the user asks otherwise
    (`threads=` or $MOSS_LAB_THREADS).
    """
    import os

    if threads is None and os.environ.get("MOSS_LAB_THREADS"):
        threads = int(os.environ["MOSS_LAB_THREADS"])
    if threads is None:
        threads = 1 if n_params < 5_000_000 else torch.get_num_threads()
    torch.set_num_threads(threads)
    return threads
