"""Stepping the sessions of a server together.

Each session's coroutine awaits ``step(session, samples)`` or ``finish(session)``, one request
in flight per session. The scheduler gathers the waiting requests, oldest first and at most one
per session, into batches of up to ``max_batch`` sessions, and runs each batch as one
``step_many`` / ``finish_many`` call in a worker thread, off the event loop. A request that
arrives while a batch runs goes into the next one, so no session waits more than one batch
behind those that came before it, and none can hold the others back by sending more.

``max_batch=1`` steps every session alone, ``workers`` of them in parallel threads.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np

from .engine import StepOutput, StreamingSession, finish_many, step_many


@dataclass
class _Request:
    session: StreamingSession
    samples: Optional[np.ndarray]  # None: the end of the session's source
    future: asyncio.Future


def run_batch(requests: Sequence[_Request]) -> List[StepOutput]:
    """One batch: the chunks of some sessions and the ends of others, each session once."""
    steps = [(i, r) for i, r in enumerate(requests) if r.samples is not None]
    ends = [(i, r) for i, r in enumerate(requests) if r.samples is None]
    out: List[Optional[StepOutput]] = [None] * len(requests)
    if steps:
        for (i, _), o in zip(steps, step_many([(r.session, r.samples) for _, r in steps])):
            out[i] = o
    if ends:
        for (i, _), o in zip(ends, finish_many([r.session for _, r in ends])):
            out[i] = o
    return out


class BatchScheduler:
    def __init__(self, max_batch: int = 16, workers: int = 1, on_batch: Optional[Callable[[int, float], None]] = None):
        if max_batch < 1 or workers < 1:
            raise ValueError(f"max_batch and workers must be >= 1, got {max_batch}, {workers}")
        self.max_batch = max_batch
        self.workers = workers
        self.on_batch = on_batch  # called with (sessions in the batch, seconds it took)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine")
        self._waiting: List[_Request] = []
        self._busy: set = set()  # sessions in a running batch
        self._running = 0

    async def step(self, session: StreamingSession, samples: np.ndarray) -> StepOutput:
        return await self._submit(session, np.asarray(samples, dtype=np.float32))

    async def finish(self, session: StreamingSession) -> StepOutput:
        return await self._submit(session, None)

    async def _submit(self, session, samples) -> StepOutput:
        if any(r.session is session for r in self._waiting) or id(session) in self._busy:
            raise RuntimeError("a session has a request in flight already")
        fut = asyncio.get_running_loop().create_future()
        self._waiting.append(_Request(session, samples, fut))
        self._pump()
        return await fut

    def _take(self) -> List[_Request]:
        batch, rest, chosen = [], [], set()
        for r in self._waiting:
            if r.future.cancelled():  # its client left
                continue
            key = id(r.session)
            if len(batch) < self.max_batch and key not in chosen and key not in self._busy:
                chosen.add(key)
                batch.append(r)
            else:
                rest.append(r)
        self._waiting = rest
        return batch

    def _pump(self) -> None:
        while self._running < self.workers:
            batch = self._take()
            if not batch:
                return
            self._running += 1
            self._busy.update(id(r.session) for r in batch)
            asyncio.get_running_loop().create_task(self._execute(batch))

    async def _execute(self, batch: List[_Request]) -> None:
        t0 = time.perf_counter()
        try:
            outs = await asyncio.get_running_loop().run_in_executor(self._pool, run_batch, batch)
        except Exception as e:  # reported to the sessions of this batch; the scheduler goes on
            for r in batch:
                if not r.future.done():
                    r.future.set_exception(e)
        else:
            for r, o in zip(batch, outs):
                if not r.future.done():
                    r.future.set_result(o)
            if self.on_batch is not None:
                self.on_batch(len(batch), time.perf_counter() - t0)
        finally:
            self._running -= 1
            self._busy.difference_update(id(r.session) for r in batch)
            self._pump()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
