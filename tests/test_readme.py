"""README.md: every Python snippet runs as shown, and "Train a network" prints what the README
says it prints (the summary table exactly, the numbers to a tolerance: BLAS kernels differ
between machines in the last bits of float32 sums)."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
SNIPPETS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)


def _run(code: str, folder: pathlib.Path, monkeypatch) -> str:
    monkeypatch.chdir(folder)  # snippets may write files (checkpoints)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    return out.getvalue()


def test_the_readme_has_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_snippet_runs(index, tmp_path, monkeypatch):
    if "import onnxruntime" in SNIPPETS[index]:  # the onnx session (nox -s onnx) runs it
        pytest.importorskip("onnxruntime", reason='the ONNX snippet needs pip install "xpcnn[onnx]"')
    _run(SNIPPETS[index], tmp_path, monkeypatch)


def test_a_cnn_in_one_minute_prints_the_output_shown(tmp_path, monkeypatch):
    section = TEXT[TEXT.index("## A CNN in one minute") :]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    shown = re.search(r"```text\n(.*?)```", section, flags=re.DOTALL).group(1)
    assert _run(code, tmp_path, monkeypatch) == shown


@pytest.mark.parametrize("which", [0, 1])
def test_save_resume_export_prints_the_output_shown(tmp_path, monkeypatch, which):
    section = TEXT[TEXT.index("## Save, resume, export") :]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[which]
    shown = re.findall(r"```text\n(.*?)```", section, flags=re.DOTALL)[which]
    if "import onnxruntime" in code:
        pytest.importorskip("onnxruntime", reason='the ONNX snippet needs pip install "xpcnn[onnx]"')
    assert _run(code, tmp_path, monkeypatch) == shown


def test_train_a_network_prints_the_output_shown(tmp_path, monkeypatch):
    section = TEXT[TEXT.index("## Train a network") :]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    shown = re.search(r"```text\n(.*?)```", section, flags=re.DOTALL).group(1)
    printed = _run(code, tmp_path, monkeypatch)
    table = shown[shown.index("Sequential on") :]
    assert table in printed, printed

    def numbers(text):
        head = text[: text.index("Sequential on")]
        return np.array([float(v) for v in re.findall(r"-?[0-9]+\.[0-9]+(?:e-?[0-9]+)?", head)])

    expected, got = numbers(shown), numbers(printed)
    assert expected.shape == got.shape == (5,), (shown, printed)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_todays_networks_snippet_prints_the_summary_shown(tmp_path, monkeypatch):
    section = TEXT[TEXT.index("## The networks people train today") :]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    shown = re.search(r"```text\n(.*?)```", section, flags=re.DOTALL).group(1)
    assert shown in _run(code, tmp_path, monkeypatch)
