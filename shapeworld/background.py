"""Training data made in a background process, beside the training loop.

Sampling, rendering and labelling scenes is plain Python that costs about as much CPU as a training
step of the built-in models; a thread cannot run it beside torch (the GIL), a process can.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")


# How long the consumer waits for an item before it checks that the producer is still alive.
_POLL_S = 1.0


class BackgroundError(RuntimeError):
    """The background process failed or died; raised where its items are consumed."""


@dataclass(frozen=True)
class _Failure:
    message: str


class _Done:
    """Sent after the last item of a finite stream."""


def _produce(make: Callable[..., Iterator[T]], args: tuple, ready: multiprocessing.Queue) -> None:
    try:
        for item in make(*args):
            ready.put(item)
    except BaseException as error:
        ready.put(_Failure(f"{type(error).__name__}: {error}"))
        raise  # and its traceback goes to this process's stderr
    ready.put(_Done())


def _consume(ready: multiprocessing.Queue, producer: multiprocessing.process.BaseProcess) -> Iterator[T]:
    """The producer's items until it is done; its failure or death raises here instead of a wait forever."""
    while True:
        try:
            item = ready.get(timeout=_POLL_S)
        except queue.Empty:
            if not producer.is_alive():
                raise BackgroundError(
                    f"the background data process died (exit code {producer.exitcode}): out of memory, or killed"
                ) from None
            continue
        if isinstance(item, _Failure):
            raise BackgroundError(f"the background data process failed: {item.message}")
        if isinstance(item, _Done):
            return
        yield item


@contextmanager
def background_iterate(make: Callable[..., Iterator[T]], *args: object, enabled: bool = True) -> Iterator[Iterator[T]]:
    """The items of `make(*args)`, made by one background process a couple of items ahead.

    The items are exactly those `make(*args)` yields here, so a seeded stream stays reproducible.
    Where no process may be started (a daemonic worker, say) or `enabled` is off, the items are made
    in this process instead: slower, same data. `make` must be a module-level function. If it raises,
    or the process dies, the consumer gets a `BackgroundError` saying so at its next item.
    """
    if not enabled:
        yield make(*args)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    ready = context.Queue(maxsize=2)
    producer = context.Process(target=_produce, args=(make, args, ready), daemon=True)
    try:
        producer.start()
    except (AssertionError, OSError):  # daemonic processes may not have children
        yield make(*args)
        return
    try:
        yield _consume(ready, producer)
    finally:
        producer.terminate()
        producer.join(timeout=5)
        ready.close()


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with `count` intra-op threads, then restore the caller's setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def training_threads(requested: int | None, *, busy_data_process: bool) -> int:
    """Intra-op threads for training: `requested`, else every core, less one left to a busy data process.

    torch's OpenMP threads spin while they wait for each other; sharing their cores with a process
    that is busy most of the time (the verifier's) stalls them badly (measured on 2 cores: 20
    samples/s with 2 threads and a data process, 119 with 1 thread and a data process, under the same
    outside load). A data process that needs little of a core is not busy: every core trains
    (`shapeworld.pretrain.PretrainConfig.example_reuse`, `reward.train.TrainConfig.torch_threads`).
    """
    if requested is not None:
        return requested
    cores = os.cpu_count() or 1
    return max(1, cores - 1) if busy_data_process else cores
