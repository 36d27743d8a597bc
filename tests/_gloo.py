"""Two local gloo processes for the tests that check data-parallel runs (training, ENAS's ω
phase): a free port, each rank's environment as torchrun sets it, one thread per rank."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp


def as_rank(rank: int, world: int, port: int) -> None:
    """Inside a spawned worker: the variables torchrun would set, and one thread."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)


def spawn(worker, out, world: int = 2) -> None:
    """Run ``worker(rank, world, port, out)`` on ``world`` processes and wait for them."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(world, port, str(out)), nprocs=world, join=True)
