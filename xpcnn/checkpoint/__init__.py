"""Checkpoints: ``xpcnn.save(model, path)`` and ``xpcnn.load(path, device=...)``, never pickle.

Two layers, each its own module:

* :mod:`xpcnn.checkpoint.format`: the bytes (header length, JSON header, raw little-endian
  tensors), the digests, the validation of any file before allocation, atomic writes;
* :mod:`xpcnn.checkpoint.state`: what a model puts in a file (architecture from the fixed
  layer registry, parameters as ``layers.<i>.<name>`` tensors, dtype, metadata) and how the
  layers are rebuilt, each checked against its class's ``parameter_shapes(config)``.

``xpcnn.load`` (in :mod:`xpcnn.model`) turns the layers into a ``Sequential``; this package
never imports the model.  Every failure raises :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import os

from . import format as fmt
from . import state
from .format import FORMAT, FORMAT_VERSION, CheckpointError, guarded

__all__ = ["FORMAT", "FORMAT_VERSION", "CheckpointError", "load_layers", "load_metadata", "save"]


def save(model, path, *, metadata: dict | None = None) -> None:
    """Save ``model`` (a ``Sequential``, or a list of layers) to ``path``, atomically.

    ``metadata``: an optional dict of strings stored in the header (e.g. epochs, a note); read
    it back with :func:`load_metadata`.  Parameters are written as host little-endian bytes,
    whatever device they live on.  ``path`` is used as given (no suffix is added).

    Raises :class:`CheckpointError` when the model cannot be described by the format (a layer
    outside the registry, a config that is not JSON, a non-float parameter); a file-system error
    (missing folder, full disk, no permission) is raised as the same ``OSError`` subclass with
    ``filename`` set to ``path``.  On any error the previous file at ``path`` is untouched, and
    no temporary file is left beside it.
    """
    path = os.fspath(path)
    try:
        body, tensors = state.header_body(model, metadata)
        fmt.write(path, body, tensors)
    except fmt.Bad as exc:
        raise CheckpointError(path, str(exc), action="save") from None


def load_layers(path) -> tuple[dict, list]:
    """The validated header and the layers (on the host) of the checkpoint at ``path``."""
    return guarded(path, lambda: state.read_layers(path))


def load_metadata(path) -> dict:
    """The ``metadata`` strings stored by ``save(..., metadata=...)`` (the header is validated,
    including its checksum; the tensors are not read)."""
    return guarded(path, lambda: state.read_metadata(path))


def __getattr__(name: str):
    if name == "load":  # a deprecation shim: the model is built in xpcnn.model (no import cycle)
        import warnings

        from ..model import load

        warnings.warn("xpcnn.checkpoint.load is xpcnn.load now.", DeprecationWarning, stacklevel=2)
        return load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
