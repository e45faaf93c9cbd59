"""Exports of a trained model to other formats: :func:`export_onnx` (:mod:`xpcnn.export.onnx`).

Importing this package imports no exporter's dependency: ``onnx`` is imported when
:func:`export_onnx` is called (it is the optional extra ``pip install "xpcnn[onnx]"``).
"""

from __future__ import annotations

from .onnx import ExportError, export_onnx

__all__ = ["ExportError", "export_onnx"]
