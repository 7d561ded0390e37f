"""Choosing the device and the CPU thread count."""
from __future__ import annotations

import torch


def pick_device(device: str | None = None) -> torch.device:
    """The device to use: the one asked for, else cuda, then mps, then cpu."""
    if device and device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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
