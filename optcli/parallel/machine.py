"""Machine constants the planner's cost model needs, measured once per process (~0.3 s).

- flops: float32 FLOP/s of one thread in a 256x512x512 sgemm;
- bandwidth: bytes/s of one thread in a 16 MB float32 add (read 2, write 1);
- pipe: bytes/s of pickled arrays through a multiprocessing Pipe (data-parallel transfer);
- handoff: seconds for a thread pool to take a task and give it back (pipeline, tensor);
- ipc: seconds of one empty round trip through a Pipe.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Machine:
    cores: int
    flops: float
    bandwidth: float
    pipe: float
    handoff: float
    ipc: float

    def to_dict(self) -> dict:
        return asdict(self)


def _best(fn, repeats: int = 5) -> float:
    """Fastest of `repeats` timed calls, after one warm-up (seconds)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _pipe_rate(nbytes: int = 4 << 20) -> tuple[float, float]:
    """(bytes/s of an array sent through a Pipe and received, empty round trip seconds)."""
    a, b = mp.Pipe()
    x = np.zeros(nbytes // 4, np.float32)
    out: list = []
    reader = lambda: out.append(b.recv())  # noqa: E731

    def send(obj) -> None:
        t = threading.Thread(target=reader)
        t.start()
        a.send(obj)
        t.join()
    big, small = _best(lambda: send(x)), _best(lambda: send(None))
    a.close()
    b.close()
    return nbytes / max(big - small, 1e-9), small


@functools.lru_cache(maxsize=1)
def measure_machine() -> Machine:
    from threadpoolctl import threadpool_limits

    from optcli.parallel.blas import available_cores
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((256, 512), np.float32), rng.standard_normal((512, 512), np.float32)
    x = rng.standard_normal(4 << 20, np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        flops = 2 * 256 * 512 * 512 / _best(lambda: a @ w)
    bandwidth = 3 * x.nbytes / _best(lambda: x + x)
    pipe, ipc = _pipe_rate()
    with ThreadPoolExecutor(2) as pool:
        handoff = _best(lambda: pool.submit(int).result(), 50)
    return Machine(available_cores(), flops, bandwidth, pipe, handoff, ipc)
