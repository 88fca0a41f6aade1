"""Thread control for many small tensor ops."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block's tensor ops on one thread.

    Every op of torch's multi-threaded CPU pool waits for all its threads to be scheduled; on a
    shared machine that costs milliseconds per op, far more than small ops gain from a second
    core (measured here under load: a 1266 x 45 by 45 x 79 product 15 ms on 2 threads, 0.2 ms
    on one; PLAS on 100k Gaussians 4.4 s on 2 threads, 1.5 s on one).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
