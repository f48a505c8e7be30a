#!/usr/bin/python3
"""NumPy brute-force peer of bench/diversity_bench.cpp: for every new vector, the minimum over base
vectors of ||q - b||^2 = ||q||^2 + ||b||^2 - 2 q.b, float32 GEMM (NumPy's BLAS) over blocks of
4096 new vectors, then the mean (the diversity gain).

    /usr/bin/python3 bench/reference/diversity_numpy.py NEW.f32 BASE.f32 DIM

The files are raw little-endian float32 matrices (rows x DIM). Prints one JSON line: seconds (the
search, after loading), cpu_seconds (user + system time of this process during the search), gain,
peak_rss_mb.
"""
import json
import resource
import sys
import time

import numpy as np


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    dim = int(sys.argv[3])
    q = np.fromfile(sys.argv[1], dtype=np.float32).reshape(-1, dim)
    b = np.fromfile(sys.argv[2], dtype=np.float32).reshape(-1, dim)
    t0, c0 = time.perf_counter(), time.process_time()
    bn = np.einsum("ij,ij->i", b, b)
    bt = np.ascontiguousarray(b.T)
    best = np.empty(q.shape[0], dtype=np.float32)
    for s in range(0, q.shape[0], 4096):
        blk = q[s:s + 4096]
        d = blk @ bt
        d *= -2
        d += bn[None, :]
        best[s:s + 4096] = d.min(axis=1) + np.einsum("ij,ij->i", blk, blk)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds,
                      "gain": float(best.astype(np.float64).mean()),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
