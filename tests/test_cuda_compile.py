"""Every template instance of ``kernels/conv2d.cu`` compiles for sm_90 without a GPU, with no
register spill (NVRTC through cupy_backends, or nvcc; see xpcnn/tools/cuda_compile.py).

Where neither compiler is available the compile test is skipped with the reason; the
``cuda_compile`` nox session sets ``XPCNN_REQUIRE_CUDA_COMPILE=1``, which turns that skip into
a failure.  NVRTC through ``cupy_backends`` loads its library with the real ``cupy`` package
(``cupy._environment``), so it cannot run in a process where the CuPy stand-in
(tests/cupy_emulated.py, the ``cupy-emulated`` backend) has replaced ``cupy``: there the NVRTC
tests are skipped and say so (the ``cuda_compile`` session runs with ``XPCNN_BACKENDS=numpy``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from xpcnn.ops import cuda
from xpcnn.tools import cuda_compile as cc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cupy_emulated  # noqa: E402

REQUIRED = os.environ.get("XPCNN_REQUIRE_CUDA_COMPILE") == "1"

SPILLING_LOG = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z3fooIfEvPT_' for 'sm_90'
ptxas info    : Function properties for _Z3fooIfEvPT_
ptxas         .     16 bytes stack frame, 16 bytes spill stores, 48 bytes spill loads
ptxas info    : Used 80 registers, used 1 barriers, 16 bytes cumulative stack size
ptxas info    : Compiling entry function '_Z3barv' for 'sm_90'
ptxas info    : Function properties for _Z3barv
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 12 registers, used 0 barriers
"""


def _available(compiler: str):
    if compiler == "nvrtc" and cupy_emulated.installed():
        reason = (
            "NVRTC needs the real cupy package, replaced in this process by the CuPy stand-in "
            "(cupy-emulated); run it with XPCNN_BACKENDS=numpy (nox -s cuda_compile)"
        )
    else:
        reason = cc.nvrtc_available() if compiler == "nvrtc" else cc.nvcc_available()
    if reason is not None:
        if REQUIRED and compiler == "nvrtc":
            pytest.fail(f"XPCNN_REQUIRE_CUDA_COMPILE=1 but {reason}")
        pytest.skip(reason)


@pytest.mark.parametrize("compiler", ["nvrtc", "nvcc"])
def test_every_instance_compiles_for_sm90_without_spills(compiler):
    _available(compiler)
    reports = (cc.compile_nvrtc if compiler == "nvrtc" else cc.compile_nvcc)("sm_90")
    assert [r.name for r in reports] == list(cuda.NAME_EXPRESSIONS)
    for r in reports:
        assert not r.spills, f"{r.name} spills: {r}"
        assert 0 < r.registers <= 255


def test_parse_ptxas_reads_registers_and_spills():
    info = cc.parse_ptxas(SPILLING_LOG)
    assert info["_Z3fooIfEvPT_"] == {"stack": 16, "spill_stores": 16, "spill_loads": 48, "registers": 80}
    assert info["_Z3barv"]["registers"] == 12
    reports = cc._reports({"foo<float>": "_Z3fooIfEvPT_", "bar": "_Z3barv"}, SPILLING_LOG)
    assert [r.spills for r in reports] == [True, False]


def test_missing_instance_is_an_error():
    with pytest.raises(cc.CompileError, match="no ptxas report for baz"):
        cc._reports({"baz": "_Z3bazv"}, SPILLING_LOG)


def test_compile_error_is_reported(monkeypatch):
    _available("nvrtc")
    monkeypatch.setattr(
        cuda, "source", lambda: "template <typename T> __global__ void f(T* y) { y[0] = undefined; }"
    )
    with pytest.raises(cc.CompileError, match="NVRTC failed"):
        cc.compile_nvrtc()


def test_main_fails_on_spills(monkeypatch, capsys):
    report = cc.InstanceReport("xpcnn_sum_partials<float>", "_Z", 80, 16, 16, 48)
    monkeypatch.setattr(cc, "compile_all", lambda compiler, arch: ("nvrtc", [report]))
    assert cc.main(["--compiler", "nvrtc"]) == 1
    assert "FAIL: register spills" in capsys.readouterr().out
