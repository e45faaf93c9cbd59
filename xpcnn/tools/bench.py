"""``python -m xpcnn.tools.bench``: CPU speed of xpcnn's convolution, next to PyTorch and the tutorial.

What is timed (float32, 3x3 kernels, stride 1, no padding, batch 64 unless ``--batch``):

* the convolutional layer, forward + backward (``dX``, ``dK``, ``db``), for 1->5 and 1->8
  channels on 28x28, 8->16 on 26x26 and 32->64 on 16x16: xpcnn's ``Convolutional``, the
  tutorial's per-sample loops (:func:`xpcnn.ops.reference.tutorial_forward` /
  ``tutorial_backward``) and ``torch.nn.Conv2d``;
* a LeNet-like training step (conv 1->8, ReLU, conv 8->16, ReLU, flatten, dense->10,
  softmax cross-entropy, SGD), built from xpcnn's own layers and from ``torch.nn``; each
  step does what ``fit`` does per batch (no ``dX`` of the input, as in PyTorch's step);
* the peak memory of that training step at batch 256: the growth of the peak resident set
  size (``VmHWM`` after resetting it through ``/proc/self/clear_refs``) over three steps,
  each implementation in a fresh process of its own.

PyTorch (when installed) runs in a separate process of the same run, in the same
environment: no thread or allocator settings are changed (the user's environment).

Each timing: warm-up, then ``--repeats`` runs (at least 5 in the full mode), in ``--rounds``
rounds that alternate xpcnn and PyTorch (pooled; the per-sample loops run in the first round
only); the median, min and max; GFLOP/s counting 2 FLOPs per multiply-add (a conv's forward + backward = 3 x its
forward) and the percentage of :data:`PEAK_GFLOPS`; the ratio to PyTorch's median (above 1
means slower than PyTorch).  The results go to a table on stdout and to a JSON file.

``--quick`` (used by the tests and CI) runs the same code on a small batch with few repeats:
it checks that everything works, its timings mean nothing and nothing fails on them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

#: Register-only FMA peak of the reference machine (2 vCPUs, Zen 4, float32), GFLOP/s.
PEAK_GFLOPS = 229.0

#: ``(name, c_I, c_O, height/width)`` of the convolution cases (3x3 kernels).
CONV_CASES = [
    ("conv 1->5 28x28", 1, 5, 28),
    ("conv 1->8 28x28", 1, 8, 28),
    ("conv 8->16 26x26", 8, 16, 26),
    ("conv 32->64 16x16", 32, 64, 16),
]
STEP_CASE = "LeNet training step"
#: The residual network of ``xpcnn.zoo.digits_resnet`` (issue 11), Adam, one step.
RESNET_CASE = "ResNet training step"
KERNEL = 3
LEARNING_RATE = 0.01

#: The targets of issue 4: (key, description, limit, kind) with kind "max" (value <= limit)
#: or "min" (value >= limit).
TARGETS = [
    ("conv_cin1", "conv fwd+bwd, C_in = 1: time / PyTorch's", 0.5, "max"),
    ("conv_cin8", "conv fwd+bwd, C_in >= 8: time / PyTorch's", 1.0, "max"),
    ("step", "LeNet training step: time / PyTorch's", 1.0, "max"),
    ("tutorial", "speed-up over the per-sample loops at 8->16", 100.0, "min"),
    ("memory", "peak memory of a training step at batch 256 / PyTorch's", 1.5, "max"),
]

TUNING_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_ARENA_MAX",
)


# ------------------------------------------------------------------------------ FLOPs
def conv_flops(n: int, c: int, o: int, hw: int, k: int = KERNEL) -> float:
    """FLOPs of a valid conv's forward + backward: 3 x (2 x multiply-adds of the forward)."""
    out = hw - k + 1
    return 3.0 * 2.0 * n * o * out * out * c * k * k


def step_flops(n: int) -> float:
    """FLOPs of the LeNet step: both convs and the dense layer, forward + backward (3x)."""
    dense = 3.0 * 2.0 * n * (16 * 24 * 24) * 10
    return conv_flops(n, 1, 8, 28) + conv_flops(n, 8, 16, 26) + dense


# ----------------------------------------------------------------------------- timing
#: Interquartile range / median above which a timing is flagged as noisy (performance.md: a
#: spread over 30% means noise).
NOISY_SPREAD = 0.3


def summarize(times: list[float]) -> dict:
    """Median, min, max (ms), and the spread: interquartile range / median."""
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    median = statistics.median(times)
    spread = (q[2] - q[0]) / median if median > 0 else 0.0
    return {
        "median_ms": median,
        "spread": spread,
        "noisy": spread > NOISY_SPREAD,
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": len(times),
        "times_ms": list(times),
    }


def measure(fn, repeats: int, warmup: int = 3) -> dict:
    """Call ``fn`` ``warmup`` times, then time ``repeats`` calls: median, min, max in ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return summarize(times)


def _rates(stats: dict, flops: float) -> dict:
    gflops = flops / (stats["median_ms"] * 1e-3) / 1e9
    return {**stats, "gflops": gflops, "pct_peak": 100.0 * gflops / PEAK_GFLOPS}


# ------------------------------------------------------------------------ xpcnn cases
def _xpcnn_conv(n: int, c: int, o: int, hw: int, seed: int = 0):
    import xpcnn

    rng = np.random.default_rng(seed)
    layer = xpcnn.Convolutional((c, hw, hw), KERNEL, o, seed=seed)
    x = layer.placement.asarray(rng.standard_normal((n, c, hw, hw)), dtype="float32")
    dy = layer.placement.asarray(
        rng.standard_normal((n, o, hw - KERNEL + 1, hw - KERNEL + 1)), dtype="float32"
    )

    def run():
        layer.forward(x)
        layer.backward(dy)  # dX, and dK, db in layer.grads

    return run


def build_lenet(seed: int = 0):
    """The LeNet-like network of performance.md from xpcnn's layers (float32, CPU)."""
    import xpcnn

    return xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 28, 28), KERNEL, 8, seed=seed),
            xpcnn.ReLU(),
            xpcnn.Convolutional((8, 26, 26), KERNEL, 16, seed=seed + 1),
            xpcnn.ReLU(),
            xpcnn.Flatten(),
            xpcnn.Dense(16 * 24 * 24, 10, seed=seed + 2),
        ],
        dtype="float32",
    )


def _xpcnn_train_step(model, optimizer, n: int, seed: int):
    """One ``train_step`` of ``model`` on random digits-shaped data (no dX of the input, as
    in PyTorch's step)."""
    import xpcnn

    model.compile(loss=xpcnn.SoftmaxCrossEntropy(), optimizer=optimizer)
    rng = np.random.default_rng(seed)
    x = model.placement.asarray(rng.standard_normal((n, 1, 28, 28)), dtype="float32")
    t = model.placement.asarray(rng.integers(0, 10, size=n))

    def run():
        model.train_step(x, t)

    return run


def _xpcnn_step(n: int, seed: int = 0):
    import xpcnn

    return _xpcnn_train_step(build_lenet(seed), xpcnn.SGD(LEARNING_RATE), n, seed)


def resnet_flops(n: int) -> float:
    """FLOPs of the residual network's convolutions, forward + backward (3x), for ``n`` digits."""
    from .. import zoo
    from ..layers import Convolutional

    total = 0
    for leaf in zoo.digits_resnet(seed=0).leaves():
        if isinstance(leaf, Convolutional):
            o, c, kh, kw = leaf.kernels.shape
            total += o * c * kh * kw * leaf.output_hw[0] * leaf.output_hw[1]
    return 3 * 2 * n * total


def _xpcnn_resnet_step(n: int, seed: int = 0):
    import xpcnn
    from xpcnn import zoo

    return _xpcnn_train_step(zoo.digits_resnet(seed=seed), xpcnn.Adam(1e-3), n, seed)


def _tutorial_conv(n: int, c: int, o: int, hw: int, seed: int = 0):
    from .. import testing as reference

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    k = (0.1 * rng.standard_normal((o, c, KERNEL, KERNEL))).astype(np.float32)
    b = np.zeros(o, dtype=np.float32)
    dy = rng.standard_normal((n, o, hw - KERNEL + 1, hw - KERNEL + 1)).astype(np.float32)

    def run():
        reference.tutorial_forward(x, k, b)
        reference.tutorial_backward(x, k, dy)

    return run


# ------------------------------------------------------------------------ torch cases
def _torch_conv(n: int, c: int, o: int, hw: int, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(c, o, KERNEL)
    x = torch.randn(n, c, hw, hw, requires_grad=True)
    dy = torch.randn(n, o, hw - KERNEL + 1, hw - KERNEL + 1)

    def run():
        x.grad = None
        conv.zero_grad(set_to_none=True)
        conv(x).backward(dy)  # dX, dK, db

    return run


def _torch_lenet():
    import torch

    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 8, KERNEL),
        nn.ReLU(),
        nn.Conv2d(8, 16, KERNEL),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 24 * 24, 10),
    )


def _torch_train_step(make_model, make_optimizer, n: int, seed: int):
    """One step of ``make_model()`` with ``make_optimizer(parameters)`` on random data."""
    import torch

    torch.manual_seed(seed)
    model = make_model()
    optimizer = make_optimizer(model.parameters())
    x = torch.randn(n, 1, 28, 28)
    t = torch.randint(0, 10, (n,))

    def run():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), t).backward()
        optimizer.step()

    return run


def _torch_step(n: int, seed: int = 0):
    import torch

    return _torch_train_step(_torch_lenet, lambda p: torch.optim.SGD(p, lr=LEARNING_RATE), n, seed)


def _torch_resnet():
    """The same residual network in PyTorch (the reference of issue 11)."""
    import torch

    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, c, stride):
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv2d(cin, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c),
            )  # fmt: skip
            same = cin == c and stride == 1
            self.shortcut = nn.Identity() if same else nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False),
                                                                     nn.BatchNorm2d(c))  # fmt: skip

        def forward(self, x):
            return torch.relu(self.block(x) + self.shortcut(x))

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, 10),
    )  # fmt: skip


def _torch_resnet_step(n: int, seed: int = 0):
    import torch

    return _torch_train_step(_torch_resnet, lambda p: torch.optim.Adam(p, lr=1e-3), n, seed)


# ----------------------------------------------------------------------------- memory
def _proc_status() -> dict:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                values[key] = int(rest.split()[0])
    return values


def peak_memory(impl: str, n: int, steps: int = 3) -> dict:
    """Peak RSS growth (MiB) of ``steps`` training steps at batch ``n``, from the state after
    the model and data are built.  Linux only (``/proc/self/clear_refs`` resets ``VmHWM``)."""
    run = _xpcnn_step(n) if impl == "xpcnn" else _torch_step(n)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as exc:
        return {"peak_growth_mib": None, "method": f"unavailable: {exc}"}
    before = _proc_status()["VmRSS"]
    for _ in range(steps):
        run()
    after = _proc_status()
    return {
        "peak_growth_mib": (after["VmHWM"] - before) / 1024.0,
        "retained_mib": (after["VmRSS"] - before) / 1024.0,
        "steps": steps,
        "batch": n,
        "method": "VmHWM - VmRSS before the steps (VmHWM reset via /proc/self/clear_refs)",
    }


# --------------------------------------------------------------------------- workers
def run_worker(impl: str, args) -> dict:
    """Time one implementation's cases (in this process); ``impl`` is xpcnn or torch."""
    conv = _xpcnn_conv if impl == "xpcnn" else _torch_conv
    step = _xpcnn_step if impl == "xpcnn" else _torch_step
    resnet = _xpcnn_resnet_step if impl == "xpcnn" else _torch_resnet_step
    out = {}
    for name, c, o, hw in CONV_CASES:
        out[name] = measure(conv(args.batch, c, o, hw), args.repeats)
    out[STEP_CASE] = measure(step(args.batch), args.repeats)
    out[RESNET_CASE] = measure(resnet(args.batch), max(3, args.repeats // 4), warmup=2)
    if impl == "xpcnn" and not args.no_tutorial:
        for name, c, o, hw in CONV_CASES:
            out[f"tutorial {name}"] = measure(
                _tutorial_conv(args.batch, c, o, hw), args.tutorial_repeats, warmup=1
            )
    return out


def _subprocess(argv: list[str], timeout: float) -> dict:
    cmd = [sys.executable, "-m", "xpcnn.tools.bench", *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"error": f"{' '.join(argv)} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _torch_version() -> str | None:
    try:
        import importlib.metadata as md

        return md.version("torch")
    except Exception:
        return None


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = None
    try:
        cfg = np.show_config(mode="dicts")
        info = cfg["Build Dependencies"]["blas"]
        blas = f"{info.get('name')} {info.get('version')}"
    except Exception:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "torch": _torch_version(),
        "tuning_variables_set": {k: os.environ[k] for k in TUNING_VARIABLES if k in os.environ},
    }


# ------------------------------------------------------------------------------ main
def _targets(cases: list[dict], memory: dict) -> list[dict]:
    by = {c["case"]: c for c in cases}
    values = {
        "conv_cin1": max(
            (by[n]["ratio_to_torch"] for n, c, _, _ in CONV_CASES if c == 1 and by[n]["ratio_to_torch"]),
            default=None,
        ),
        "conv_cin8": max(
            (by[n]["ratio_to_torch"] for n, c, _, _ in CONV_CASES if c >= 8 and by[n]["ratio_to_torch"]),
            default=None,
        ),
        "step": by[STEP_CASE]["ratio_to_torch"],
        "tutorial": by["conv 8->16 26x26"]["speedup_vs_tutorial"],
        "memory": memory.get("ratio"),
    }
    out = []
    for key, text, limit, kind in TARGETS:
        v = values[key]
        met = None if v is None else (v <= limit if kind == "max" else v >= limit)
        out.append({"key": key, "target": text, "limit": limit, "kind": kind, "value": v, "met": met})
    return out


def collect(args) -> dict:
    """Run everything: xpcnn here, PyTorch and the memory measurements in subprocesses."""
    common = ["--batch", str(args.batch), "--repeats", str(args.repeats)] + (
        ["--quick"] if args.quick else []
    )
    have_torch = _torch_version() is not None and not args.no_torch
    # Rounds alternate xpcnn (here) and PyTorch (a fresh process each round), so that a burst
    # of load from elsewhere on a shared machine falls on both; every round's runs are pooled.
    xp_runs: dict[str, list[float]] = {}
    torch_runs: dict[str, list[float]] = {}
    errors = []
    for r in range(args.rounds):
        args.no_tutorial = args.skip_tutorial or r > 0  # the slow loops: first round only
        for name, stats in run_worker("xpcnn", args).items():
            xp_runs.setdefault(name, []).extend(stats["times_ms"])
        if have_torch:
            got = _subprocess(["--worker", "torch", *common], args.timeout)
            if "error" in got:
                errors.append(got.pop("error"))
            for name, stats in got.items():
                torch_runs.setdefault(name, []).extend(stats["times_ms"])
    xp_times = {name: summarize(t) for name, t in xp_runs.items()}
    torch_times = {name: summarize(t) for name, t in torch_runs.items()}

    cases = []
    for name, c, o, hw in [*CONV_CASES, (STEP_CASE, None, None, None), (RESNET_CASE, None, None, None)]:
        if c is not None:
            flops = conv_flops(args.batch, c, o, hw)
        else:
            flops = resnet_flops(args.batch) if name == RESNET_CASE else step_flops(args.batch)
        entry = {
            "case": name,
            "kind": "step" if c is None else "conv",
            "shape": None if c is None else {"c_in": c, "c_out": o, "hw": hw, "kernel": KERNEL},
            "batch": args.batch,
            "flops": flops,
            "xpcnn": _rates(xp_times[name], flops),
            "torch": _rates(torch_times[name], flops) if name in torch_times else None,
            "tutorial": None,
        }
        if f"tutorial {name}" in xp_times:
            entry["tutorial"] = _rates(xp_times[f"tutorial {name}"], flops)
        med = entry["xpcnn"]["median_ms"]
        entry["ratio_to_torch"] = med / entry["torch"]["median_ms"] if entry["torch"] else None
        entry["speedup_vs_tutorial"] = entry["tutorial"]["median_ms"] / med if entry["tutorial"] else None
        cases.append(entry)

    memory = {"batch": args.memory_batch}
    for impl in ("xpcnn", "torch") if have_torch else ("xpcnn",):
        argv = ["--worker", f"memory-{impl}", "--batch", str(args.memory_batch), "--quick"]
        got = _subprocess(argv, args.timeout)
        if "error" in got:
            errors.append(got["error"])
        memory[impl] = got
    xm = memory.get("xpcnn", {}).get("peak_growth_mib")
    tm = memory.get("torch", {}).get("peak_growth_mib")
    memory["ratio"] = xm / tm if xm is not None and tm else None

    return {
        "xpcnn_version": _xpcnn_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m xpcnn.tools.bench", *sys.argv[1:]]),
        "quick": args.quick,
        "settings": {
            "batch": args.batch,
            "rounds": args.rounds,
            "repeats": args.repeats,
            "tutorial_repeats": args.tutorial_repeats,
            "dtype": "float32",
            "kernel": KERNEL,
            "peak_gflops": PEAK_GFLOPS,
        },
        "machine": machine_info(),
        "cases": cases,
        "memory": memory,
        "targets": _targets(cases, memory),
        "errors": errors,
    }


def _xpcnn_version() -> str:
    from .. import __version__

    return __version__


def _fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def format_table(result: dict) -> str:
    """The results as a Markdown table (times in ms, medians with min-max)."""
    head = "| case | implementation | median ms | min-max ms | GFLOP/s | % of peak | x PyTorch |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|"]
    for c in result["cases"]:
        torch_ms = c["torch"]["median_ms"] if c["torch"] else None
        for impl, label in (("xpcnn", "xpcnn"), ("tutorial", "per-sample loops"), ("torch", "PyTorch")):
            s = c[impl]
            if s is None:
                continue
            ratio = s["median_ms"] / torch_ms if torch_ms else None
            noisy = " (noisy)" if s["noisy"] else ""
            lines.append(
                f"| {c['case']} | {label} | {s['median_ms']:.2f}{noisy} | {s['min_ms']:.2f}-{s['max_ms']:.2f} "
                f"| {s['gflops']:.1f} | {s['pct_peak']:.1f} | {_fmt(ratio)} |"
            )
    if any(c[i] and c[i]["noisy"] for c in result["cases"] for i in ("xpcnn", "torch", "tutorial")):
        lines.append("")
        lines.append(
            f"(noisy): interquartile range over {NOISY_SPREAD:.0%} of the median: the machine was busy; "
            "re-run when it is idle."
        )
    mem = result["memory"]
    x = mem.get("xpcnn", {}).get("peak_growth_mib")
    t = mem.get("torch", {}).get("peak_growth_mib")
    lines.append("")
    lines.append(
        f"Peak memory of a training step at batch {mem['batch']} (peak RSS growth): "
        f"xpcnn {_fmt(x, '.1f')} MiB, PyTorch {_fmt(t, '.1f')} MiB, ratio {_fmt(mem.get('ratio'))}."
    )
    lines.append("")
    lines.append("| target | limit | measured | met |")
    lines.append("|---|---:|---:|---|")
    for tg in result["targets"]:
        sign = "<=" if tg["kind"] == "max" else ">="
        met = "-" if tg["met"] is None else ("yes" if tg["met"] else "no")
        lines.append(f"| {tg['target']} | {sign} {tg['limit']:g} | {_fmt(tg['value'])} | {met} |")
    m = result["machine"]
    lines.append("")
    lines.append(
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; Python {m['python']}, NumPy {m['numpy']} "
        f"({m['blas']}), PyTorch {m['torch'] or 'not installed'}; batch {result['settings']['batch']}, "
        f"float32{'; QUICK MODE: timings not meaningful' if result['quick'] else ''}."
    )
    if m["tuning_variables_set"]:
        lines.append(f"Tuning variables set in this environment: {m['tuning_variables_set']}")
    for err in result["errors"]:
        lines.append(f"ERROR: {err}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m xpcnn.tools.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small batch, few repeats: a smoke test (CI)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 64; 4 with --quick)")
    p.add_argument(
        "--repeats", type=int, default=None, help="timed runs per case (default 15; 3 with --quick)"
    )
    p.add_argument("--tutorial-repeats", type=int, default=None, help="timed runs of the loops (default 5)")
    p.add_argument("--memory-batch", type=int, default=None, help="batch of the memory test (default 256)")
    p.add_argument("--output", default="bench-results.json", help="JSON file to write")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even when installed")
    p.add_argument(
        "--no-tutorial", dest="skip_tutorial", action="store_true", help="skip the per-sample loops"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating xpcnn/PyTorch rounds, pooled (default 3; 1 with --quick)",
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed to each subprocess")
    p.add_argument("--worker", choices=["torch", "memory-xpcnn", "memory-torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.batch = args.batch or (4 if args.quick else 64)
    args.rounds = max(1, args.rounds or (1 if args.quick else 3))
    args.no_tutorial = args.skip_tutorial
    args.repeats = args.repeats or (3 if args.quick else 15)
    args.tutorial_repeats = args.tutorial_repeats or (3 if args.quick else 5)
    args.memory_batch = args.memory_batch or (16 if args.quick else 256)
    if not args.quick and min(args.repeats, args.tutorial_repeats) < 5:
        p.error("the full benchmark needs at least 5 repeats (use --quick for a smoke test)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker == "torch":
        args.no_tutorial = True
        print(json.dumps(run_worker("torch", args)))
        return 0
    if args.worker in ("memory-xpcnn", "memory-torch"):
        print(json.dumps(peak_memory(args.worker.split("-")[1], args.batch)))
        return 0
    result = collect(args)
    print(format_table(result))
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nWrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
