"""Yardstick for `ssd-cluster bench allreduce`: torch.distributed's gloo all_reduce on this host.

Not a dependency of ssd-cluster. Run with Debian's python3-torch:
    /usr/bin/python3 docs/yardstick/gloo_allreduce.py --workers 2 --size-mb 64 --iterations 10
Prints one JSON line with the same fields as `bench allreduce --json` (busbw = algbw * 2(N-1)/N).
"""

import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def member(rank, world, size_bytes, iterations, port, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    n = size_bytes // 4
    data = torch.full((n,), float(rank + 1))
    dist.all_reduce(data)  # warm-up
    times = []
    for _ in range(iterations):
        data.fill_(float(rank + 1))
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(data)
        times.append(time.perf_counter() - start)
    expected = world * (world + 1) / 2
    ok = bool(torch.all(data == expected))
    if rank == 0:
        queue.put((times, ok))
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size-mb", type=float, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--port", type=int, default=29511)
    args = parser.parse_args()
    size_bytes = int(args.size_mb * 1024 * 1024)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=member, args=(r, args.workers, size_bytes, args.iterations, args.port, queue))
        for r in range(args.workers)
    ]
    for p in procs:
        p.start()
    times, ok = queue.get()
    for p in procs:
        p.join()
    median = statistics.median(times)
    algbw = size_bytes / median / 1e9
    busbw = algbw * 2 * (args.workers - 1) / args.workers
    print(json.dumps({"impl": "torch-gloo", "torch": torch.__version__, "workers": args.workers,
                      "bytes": size_bytes, "medianSeconds": round(median, 6), "algbwGBps": round(algbw, 3),
                      "busbwGBps": round(busbw, 3), "verified": ok}))


if __name__ == "__main__":
    main()
