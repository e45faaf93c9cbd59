"""Data-parallel cost of the LeNet step: ``python -m xpcnn.tools.bench_distributed``.

Runs itself under ``mpiexec -n 1`` and ``-n 2`` (``--ranks 1,2``), and on every rank measures,
for the LeNet-like network of the CPU benchmark (global batch 64):

* the all-reduce of its gradients (one packed float32 buffer, the model's parameter count)
  per call, and of buffers of 1 KiB to 4 MiB, from which a latency ``a`` and a bandwidth
  ``B`` are fitted (``t = a + bytes / B``);
* the distributed training step (``xpcnn.distributed.train_step``: this rank's share of the
  batch forward and backward, the all-reduce, the optimizer step).

It then prints the ring all-reduce cost model ``T(N) = 2 (N - 1) (a + G / (N B))`` (``G`` the
gradient bytes: ``2 (N - 1)`` steps of ``G / N`` bytes each) with the step times it implies for
N processes on the measured link and on two assumed ones (8 GPUs on NVLink, 4 nodes on
100 Gb/s Ethernet; their ``a`` and ``B`` are assumptions, stated, not measurements), and writes
everything to ``--out`` (JSON).  Timings only: nothing here can fail on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

#: Assumed links for the cost model (not measured here): latency in s, bandwidth in bytes/s.
LINKS = {
    "8 GPUs, NVLink (NCCL)": {"ranks": 8, "latency": 10e-6, "bandwidth": 150e9},
    "4 nodes, 100 Gb/s Ethernet": {"ranks": 4, "latency": 30e-6, "bandwidth": 10e9},
}
BATCH = 64
SIZES = [2**10, 2**12, 2**14, 2**16, 2**18, 2**20, 2**22]  # bytes


def _median_time(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def worker(repeats: int, out: str) -> None:
    import xpcnn
    from xpcnn import distributed
    from xpcnn.tools.bench import build_lenet

    comm = distributed.mpi()
    model = build_lenet(0).compile(loss=xpcnn.SoftmaxCrossEntropy(), optimizer=xpcnn.SGD(0.01))
    rng = np.random.default_rng(comm.rank)
    place = model.placement
    share = comm.shard(slice(0, BATCH), BATCH)
    x = place.asarray(rng.standard_normal((BATCH, 1, 28, 28))[share], dtype="float32")
    y = place.asarray(rng.integers(0, 10, BATCH)[share])
    value_and_gradient = model.loss.value_and_gradient

    def step():
        distributed.train_step(model, comm, x, y, BATCH, value_and_gradient, lambda value: None)

    step()  # warm-up (the shapes are validated once)
    comm.barrier()
    step_time = _median_time(step, repeats)
    count = model.parameter_count()
    gradient = place.zeros((count,), "float32")
    comm.barrier()
    gradient_time = _median_time(lambda: comm.allreduce([gradient]), repeats)
    sweep = {}
    for size in SIZES:
        buffer = place.zeros((size // 4,), "float32")
        comm.barrier()
        sweep[size] = _median_time(lambda b=buffer: comm.allreduce([b]), repeats)
    if comm.rank == 0:
        with open(out, "w") as f:
            json.dump({"ranks": comm.size, "parameters": count, "step": step_time,
                       "allreduce_gradients": gradient_time, "sweep": sweep}, f)  # fmt: skip


def fit_link(sweep: dict, ranks: int) -> tuple[float, float]:
    """Latency and bandwidth of one ring step from the measured all-reduce times
    (``t = 2 (N - 1) (a + S / (N B))``, least squares of the relative error in ``a`` and
    ``1 / B``)."""
    sizes = np.array([float(s) for s in sweep])
    times = np.array(list(sweep.values()))
    steps = 2 * (ranks - 1)
    design = np.stack([np.full_like(sizes, steps), steps * sizes / ranks], axis=1)
    # relative errors: each size counts the same, not just the largest buffers
    (latency, inverse), *_ = np.linalg.lstsq(design / times[:, None], np.ones_like(times), rcond=None)
    return float(max(latency, 0.0)), float(1.0 / inverse) if inverse > 0 else float("inf")


def ring_time(ranks: int, nbytes: float, latency: float, bandwidth: float) -> float:
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) * (latency + nbytes / (ranks * bandwidth))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", default="1,2", help="process counts to measure (default 1,2)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", default="bench-distributed.json")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args.repeats, args.worker)
        return 0
    mpiexec = shutil.which("mpiexec") or shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    if mpiexec is None:
        print('bench_distributed: needs mpiexec and mpi4py: pip install "xpcnn[mpi]"', file=sys.stderr)
        return 2
    results = []
    for ranks in (int(r) for r in args.ranks.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "r.json")
            command = [mpiexec, "-n", str(ranks), sys.executable, "-m", "mpi4py", "-m",
                       "xpcnn.tools.bench_distributed", "--repeats", str(args.repeats), "--worker", path]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // ranks))}
            subprocess.run(command, check=True, env=env, timeout=900)
            with open(path) as f:
                results.append(json.load(f))
    gradient_bytes = 4 * results[0]["parameters"]
    print(
        f"LeNet step, global batch {BATCH}, {results[0]['parameters']:,} parameters ({gradient_bytes / 2**20:.2f} MiB of gradients)"
    )
    print(f"{'processes':>9}  {'step (ms)':>9}  {'all-reduce of the gradients (ms)':>32}")
    for r in results:
        print(f"{r['ranks']:>9}  {1e3 * r['step']:>9.2f}  {1e3 * r['allreduce_gradients']:>32.3f}")
    model = {}
    two = next((r for r in results if r["ranks"] > 1), None)
    if two is not None:
        latency, bandwidth = fit_link({int(k): v for k, v in two["sweep"].items()}, two["ranks"])
        model["this machine (MPI, shared memory)"] = {
            "ranks": two["ranks"],
            "latency": latency,
            "bandwidth": bandwidth,
        }
    model.update(LINKS)
    compute = results[0]["step"]
    print(
        "\nring all-reduce T(N) = 2 (N-1) (a + G / (N B)); here step(N) ~ step(1) / N + T(N) (compute split N ways)"
    )
    for name, link in model.items():
        t = ring_time(link["ranks"], gradient_bytes, link["latency"], link["bandwidth"])
        measured = name.startswith("this machine")
        estimate = f", step ~ {1e3 * (compute / link['ranks'] + t):.2f} ms" if measured else ""
        print(f"  {name}: a = {link['latency'] * 1e6:.1f} us, B = {link['bandwidth'] / 1e9:.2f} GB/s, "
              f"N = {link['ranks']}: T = {t * 1e3:.3f} ms a step{estimate}")  # fmt: skip
        link["allreduce_ms"] = t * 1e3
    with open(args.out, "w") as f:
        json.dump({"measured": results, "model": model, "gradient_bytes": gradient_bytes}, f, indent=1)
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
