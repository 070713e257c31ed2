"""Scale-out measurement of :mod:`zeroproof_nb.distributed` (issue #17 targets).

A pool of N points is generated blockwise on the workers (x_i = 2·u_i − 1 from the counter-based
stream, so no process ever holds the pool), then |Q| of a rational model with two poles in the
domain, the importance weights (pass 1) and a batch of importance draws with replacement (pass
2, which recomputes x and |Q| of the chunks receiving draws), and the batch's x gathered to the
driver. Reported: wall time per stage, peak RSS per worker, throughput per core, and the same
pipeline in-core on one thread for the ratio.

Run from the repository root::

    python -m bench.dask_scale                 # N = 1e9, 2 workers, chunks of 2**21
    python -m bench.dask_scale --n 1e8 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from typing import Any

import numpy as np

#: the model: P of degree 3, Q = (1 - x/0.3)(1 + x/0.6), poles at 0.3 and -0.6
THETA = [1.0, 0.5, 0.25, 0.1]
PHI = [-(1 / 0.3 - 1 / 0.6), -1 / (0.3 * 0.6)]
POOL_KEY = 0x5EED


def x_block(block_info: Any = None) -> np.ndarray:
    """Points [start, stop) of the pool: 2·stream_uniform(POOL_KEY, i) − 1."""
    from zeroproof_nb.kernels.segments_cpu import uniforms_at

    start, stop = block_info[None]["array-location"][0]
    out = np.empty(stop - start, dtype=np.float64)
    uniforms_at(np.uint64(POOL_KEY), start, out)
    out *= 2.0
    out -= 1.0
    return out


def pool_x(n: int, chunk: int) -> Any:
    import dask.array as da

    sizes = (chunk,) * (n // chunk) + ((n % chunk,) if n % chunk else ())
    return da.map_blocks(x_block, chunks=(sizes,), dtype=np.float64,
                         meta=np.empty(0, dtype=np.float64))


def in_core(n: int, batch: int, config: Any, repeats: int = 3) -> dict[str, float]:
    """The same stages in-core on one thread (best of ``repeats``): seconds per stage."""
    import numba

    from zeroproof_nb.kernels.segments_cpu import uniforms_at
    from zeroproof_nb.rational import rational_eval
    from zeroproof_nb.training.importance_sampler import ImportanceSampler

    numba.set_num_threads(1)
    best: dict[str, float] = {}
    for rep in range(repeats + 1):  # the first run compiles
        t0 = time.perf_counter()
        c0 = time.process_time()
        x = np.empty(n, dtype=np.float64)
        uniforms_at(np.uint64(POOL_KEY), 0, x)
        x *= 2.0
        x -= 1.0
        t1 = time.perf_counter()
        _, q = rational_eval(x, THETA, PHI, return_q=True)
        q = np.abs(q)
        t2 = time.perf_counter()
        ImportanceSampler(config).sample_indices(q, batch)
        t3 = time.perf_counter()
        cur = {"x": t1 - t0, "q_abs": t2 - t1, "weights_and_draws": t3 - t2, "total": t3 - t0,
               "cpu": time.process_time() - c0}
        if rep and (not best or cur["total"] < best["total"]):
            best = cur
        del x, q
    return best


def worker_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_cpu_s() -> float:
    """CPU seconds (user + system) of this worker process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=float, default=1e9, help="pool size (points)")
    ap.add_argument("--chunk", type=int, default=1 << 21, help="points per chunk")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--in-core-n", type=int, default=1 << 24)
    ap.add_argument("--persist", action="store_true",
                    help="persist |Q| on the workers (8 bytes per point) between the passes")
    ap.add_argument("--trim", type=int, default=1 << 30,
                    help="glibc malloc trim / mmap threshold of the workers (bytes)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    n = int(args.n)
    os.environ["NUMBA_NUM_THREADS"] = "1"  # one numba thread per single-threaded worker
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    import dask
    from dask.distributed import Client, LocalCluster, wait

    from zeroproof_nb import distributed as zd
    from zeroproof_nb.training.importance_sampler import ImportanceSamplerConfig

    config = ImportanceSamplerConfig(weight_power=2.0, min_q_abs=1e-6, max_weight=1e4, seed=3)
    res: dict[str, Any] = {"n": n, "chunk": args.chunk, "workers": args.workers,
                           "persist": bool(args.persist),
                           "batch": args.batch, "machine": platform.processor() or
                           platform.machine(), "cpus": os.cpu_count()}
    res["load_average_before"] = os.getloadavg()
    base = in_core(args.in_core_n, args.batch, config)
    res["in_core_1thread_s"] = base
    res["in_core_ns_per_point"] = base["total"] / args.in_core_n * 1e9

    # workers reuse freed chunk buffers: Dask's default trim threshold (64 KiB) returns them to
    # the OS after every task, and arrays above glibc's mmap threshold are unmapped when freed;
    # each new chunk then pays its page faults again (~1 ns per byte on this VM, more than the
    # kernels). Chunks of 2**21 points keep every buffer under the 32 MiB threshold. The
    # variables must be set before the worker processes start (pre-spawn).
    malloc_env = {"MALLOC_TRIM_THRESHOLD_": str(args.trim),
                  "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}
    dask.config.set({"distributed.nanny.pre-spawn-environ": {
        **dask.config.get("distributed.nanny.pre-spawn-environ"), **malloc_env}})
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None, silence_logs=40,
                           env=malloc_env)
    client = Client(cluster)
    try:
        # warm-up: compile every kernel on every worker (a pool of a few chunks per worker)
        small = pool_x(4 * args.workers * (1 << 18), 1 << 18)
        qs = zd.q_abs(small, THETA, PHI)
        zd.sample_indices(qs, args.batch, config=config, seed=1)
        rss0 = client.run(worker_peak_rss_mib)
        cpu0 = client.run(worker_cpu_s)

        x = pool_x(n, args.chunk)
        q = zd.q_abs(x, THETA, PHI)
        d0 = time.process_time()
        t0 = time.perf_counter()
        if args.persist:  # |Q| kept on the workers: the draw pass reads it, not x
            q = q.persist()
            wait(q)
        w = zd.importance_weights(q, config)
        t1 = time.perf_counter()
        idx = zd.sample_indices(q, args.batch, config=config, seed=3, prepared=w)
        t2 = time.perf_counter()
        cpu2 = client.run(worker_cpu_s)
        res["driver_and_scheduler_cpu_s_passes"] = time.process_time() - d0
        xb = zd.gather(x, idx)
        t3 = time.perf_counter()
        rss1 = client.run(worker_peak_rss_mib)
        table = w.table
        n_chunks = len(q.chunks[0])
        res.update({
            "pass1_weights_s": t1 - t0,
            "pass2_draws_s": t2 - t1,
            "gather_s": t3 - t2,
            "end_to_end_s": t3 - t0,
            "n_chunks": n_chunks,
            "n_segments": int(table.prefix.shape[0]),
            "cut_segments": len(table.cut),
            "total_weight": w.total,
            "n_positive": w.n_positive,
            "unique_indices": int(np.unique(idx).size),
            "batch_x_min_abs_q": float(np.min(np.abs(1 + PHI[0] * xb + PHI[1] * xb * xb))),
            "worker_peak_rss_mib_before": list(rss0.values()),
            "worker_peak_rss_mib": list(rss1.values()),
            "chunk_cost_pass1_ms": (t1 - t0) * args.workers / n_chunks * 1e3,
            "chunk_cost_pass2_ms": (t2 - t1) * args.workers / n_chunks * 1e3,
        })
        per_core = (t2 - t0) * args.workers / n * 1e9
        cpu = sum(cpu2.values()) - sum(cpu0.values())
        res["worker_cpu_s_passes"] = cpu
        res["dask_ns_per_point_per_core"] = per_core
        res["dask_cpu_ns_per_point"] = cpu / n * 1e9
        res["in_core_cpu_ns_per_point"] = base["cpu"] / args.in_core_n * 1e9
        res["ratio_dask_to_in_core_per_core"] = per_core / res["in_core_ns_per_point"]
        res["ratio_cpu_time"] = res["dask_cpu_ns_per_point"] / res["in_core_cpu_ns_per_point"]
    finally:
        client.close()
        cluster.close()
    res["load_average_after"] = os.getloadavg()
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return res


if __name__ == "__main__":
    main()
