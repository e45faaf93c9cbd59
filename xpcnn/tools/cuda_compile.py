"""Compile every template instance of ``kernels/conv2d.cu`` for a GPU architecture, without a GPU.

Two compilers, either of which works on a machine with no driver:

* ``nvrtc``: NVRTC through ``cupy_backends.cuda.libs.nvrtc`` (needs ``cupy-cuda13x`` and
  ``nvidia-cuda-nvrtc``), with every instance of :data:`xpcnn.ops.cuda.NAME_EXPRESSIONS` added
  as a name expression, exactly as ``cupy.RawModule`` does;
* ``nvcc``: ``nvcc -arch=sm_90 -cubin -Xptxas=-v`` on a wrapper that takes the address of every
  instance (which makes nvcc instantiate it).

Both pass ``-Xptxas=-v`` and parse ptxas's report: registers, stack frame and spill bytes per
instance.  The check fails on a compile error, on a missing instance, or on any register
spill.  ``python -m xpcnn.tools.cuda_compile [--compiler nvrtc|nvcc|any] [--arch sm_90]``
prints a table and exits non-zero on failure (the ``cuda_compile`` nox session).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..ops import cuda


@dataclass
class InstanceReport:
    name: str  # the name expression
    mangled: str
    registers: int
    stack_bytes: int
    spill_stores: int
    spill_loads: int

    @property
    def spills(self) -> bool:
        return self.spill_stores > 0 or self.spill_loads > 0


#: What cupy.RawModule adds to the options of every compile (flush float32 denormals to zero).
CUPY_ADDS = ("-ftz=true",)


class CompileError(RuntimeError):
    pass


_ENTRY = re.compile(r"Compiling entry function '(\S+)' for '(\w+)'")
_PROPS = re.compile(r"Function properties for (\S+)")
_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")


def parse_ptxas(log: str) -> dict[str, dict[str, int]]:
    """``{mangled name: {registers, stack, spill_stores, spill_loads}}`` from ``ptxas -v`` output."""
    info: dict[str, dict[str, int]] = {}
    current = None
    for line in log.splitlines():
        m = _ENTRY.search(line) or _PROPS.search(line)
        if m:
            current = m.group(1)
            info.setdefault(current, {})
            continue
        if current is None:
            continue
        m = _STACK.search(line)
        if m:
            info[current].update(
                stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3))
            )
        m = _REGS.search(line)
        if m:
            info[current]["registers"] = int(m.group(1))
    return info


def nvrtc_available() -> str | None:
    """None when NVRTC can be used, else the reason it cannot."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # ImportError, or the NVRTC library not found
        return f"NVRTC unavailable ({type(exc).__name__}: {exc}); install cupy-cuda13x and nvidia-cuda-nvrtc"
    return None


def nvcc_available() -> str | None:
    return None if shutil.which("nvcc") else "nvcc not found on PATH"


def _reports(names_to_mangled: dict[str, str], log: str) -> list[InstanceReport]:
    info = parse_ptxas(log)
    out = []
    for name, mangled in names_to_mangled.items():
        props = info.get(mangled)
        if props is None or "registers" not in props:
            raise CompileError(f"no ptxas report for {name} ({mangled}); log:\n{log}")
        out.append(
            InstanceReport(
                name,
                mangled,
                props["registers"],
                props.get("stack", 0),
                props.get("spill_stores", 0),
                props.get("spill_loads", 0),
            )  # fmt: skip
        )
    return out


def compile_nvrtc(arch: str = "sm_90") -> list[InstanceReport]:
    """Compile the real source with NVRTC, as ``cupy.RawModule`` would, and report each instance."""
    from cupy_backends.cuda.libs import nvrtc

    prog = nvrtc.createProgram(cuda.source(), "conv2d.cu", [], [])
    try:
        for name in cuda.NAME_EXPRESSIONS:
            nvrtc.addNameExpression(prog, name)
        options = [f"-arch={arch}", *cuda.OPTIONS, *CUPY_ADDS, "-Xptxas=-v"]
        try:
            nvrtc.compileProgram(prog, options)
        except nvrtc.NVRTCError as exc:
            raise CompileError(f"NVRTC failed: {exc}\n{nvrtc.getProgramLog(prog)}") from None
        log = nvrtc.getProgramLog(prog)
        mangled = {name: nvrtc.getLoweredName(prog, name) for name in cuda.NAME_EXPRESSIONS}
    finally:
        nvrtc.destroyProgram(prog)
    return _reports(mangled, log)


def compile_nvcc(arch: str = "sm_90") -> list[InstanceReport]:
    """Compile the real source with ``nvcc -cubin -Xptxas=-v`` and report each instance."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise CompileError("nvcc not found on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp, "instances.cu")
        src = Path(tmp, "conv2d.cu")
        src.write_text(cuda.source(), encoding="utf-8")
        lines = ['#include "conv2d.cu"', "void* xpcnn_instances[] = {"]
        lines += [f"    (void*)&{name}," for name in cuda.NAME_EXPRESSIONS]
        lines += ["};", ""]
        wrapper.write_text("\n".join(lines), encoding="utf-8")
        cmd = [
            nvcc,
            f"-arch={arch}",
            "-cubin",
            "-Xptxas=-v",
            *cuda.OPTIONS,
            *CUPY_ADDS,
            "-o",
            str(Path(tmp, "out.cubin")),
            str(wrapper),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        log = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise CompileError(f"nvcc failed ({proc.returncode}):\n{log}")
    info = parse_ptxas(log)
    demangled = _demangle(list(info))
    mangled = {}
    for name in cuda.NAME_EXPRESSIONS:
        hits = [m for m, d in demangled.items() if d.startswith(f"void {name}(")]
        if len(hits) != 1:
            raise CompileError(
                f"instance {name} not found in the ptxas report (candidates {hits}); log:\n{log}"
            )
        mangled[name] = hits[0]
    return _reports(mangled, log)


def _demangle(names: list[str]) -> dict[str, str]:
    tool = shutil.which("cu++filt") or shutil.which("c++filt")
    if tool is None:
        raise CompileError("neither cu++filt nor c++filt found to read nvcc's ptxas report")
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return dict(zip(names, out.splitlines(), strict=True))


def compile_all(compiler: str = "any", arch: str = "sm_90") -> tuple[str, list[InstanceReport]]:
    """``(compiler used, reports)``; ``compiler`` is ``nvrtc``, ``nvcc`` or ``any`` (NVRTC first)."""
    if compiler in ("nvrtc", "any") and (compiler == "nvrtc" or nvrtc_available() is None):
        return "nvrtc", compile_nvrtc(arch)
    if compiler in ("nvcc", "any"):
        return "nvcc", compile_nvcc(arch)
    raise ValueError(f"compiler must be nvrtc, nvcc or any; received {compiler!r}")


def format_table(reports: list[InstanceReport]) -> str:
    rows = [f"{'instance':<48} {'regs':>5} {'stack':>6} {'spill st':>9} {'spill ld':>9}"]
    for r in reports:
        rows.append(
            f"{r.name:<48} {r.registers:>5} {r.stack_bytes:>6} {r.spill_stores:>9} {r.spill_loads:>9}"
        )
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiler", default="any", choices=["any", "nvrtc", "nvcc", "both"])
    parser.add_argument("--arch", default="sm_90")
    args = parser.parse_args(argv)
    compilers = ["nvrtc", "nvcc"] if args.compiler == "both" else [args.compiler]
    failed = False
    for compiler in compilers:
        try:
            used, reports = compile_all(compiler, args.arch)
        except CompileError as exc:
            print(f"FAIL ({compiler}): {exc}")
            failed = True
            continue
        print(f"{used}, {args.arch}: {len(reports)} instances of kernels/conv2d.cu")
        print(format_table(reports))
        spilled = [r.name for r in reports if r.spills]
        if spilled:
            print(f"FAIL: register spills in {spilled}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
