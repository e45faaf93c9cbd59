"""Checkpoints: ``xpcnn.save(model, path)`` and ``xpcnn.load(path, device=...)``, never pickle.

Three modules:

* :mod:`xpcnn.checkpoint.format`: the bytes (header length, JSON header, raw little-endian
  tensors), the digests, the validation of any file before allocation, atomic writes;
* :mod:`xpcnn.checkpoint.state`: what a model puts in a file (architecture from the fixed
  layer registry, parameters as ``layers.<i>.<name>`` tensors, dtype, metadata) and how the
  layers are rebuilt, each checked against its class's ``parameter_shapes(config)``;
* :mod:`xpcnn.checkpoint.training`: the training state (loss, metrics, optimizer with its
  state arrays, the progress of ``fit``) that lets a run resume exactly.

A checkpoint is a valid safetensors file (format 2.x): ``safetensors.numpy.load_file(path)``
reads its tensors, and a file written by ``safetensors.numpy.save_file(named_tensors(model),
path, metadata=safetensors_metadata(model))`` loads in xpcnn.

``xpcnn.load`` (in :mod:`xpcnn.model`) turns the layers into a ``Sequential``; this package
never imports the model.  Every failure raises :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import os

from . import format as fmt
from . import state, training
from .format import FORMAT, FORMAT_VERSION, CheckpointError, guarded

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "load_layers",
    "load_metadata",
    "named_tensors",
    "safetensors_metadata",
    "save",
]


def _training(model, include_optimizer: bool | None):
    """``(info, tensors)`` of the training state to save, or None (weights only)."""
    if include_optimizer is not None and not isinstance(include_optimizer, bool):
        raise fmt.Bad(f"include_optimizer must be None, True or False, received {include_optimizer!r:.80}")
    if include_optimizer is False or not hasattr(model, "optimizer"):
        return None
    if model.loss is None and model.optimizer is None:
        return None
    leaves = model.leaves()
    return training.describe(model, leaves, getattr(model, "fit_state", None), strict=bool(include_optimizer))


def save(model, path, *, metadata: dict | None = None, include_optimizer: bool | None = None) -> None:
    """Save ``model`` (a ``Sequential``, or a list of layers) to ``path``, atomically.

    ``metadata``: an optional dict of strings stored in the header (e.g. a note; the keys of
    the format and of the content are reserved); read it back with :func:`load_metadata`.
    Parameters are written as host little-endian bytes, whatever device they live on.
    ``path`` is used as given (no suffix is added).

    ``include_optimizer`` (Keras's name): a compiled or fitted model also saves its training
    state (:mod:`xpcnn.checkpoint.training`): the loss, the metrics, the optimizer with every
    state array and its schedule's position, and how far ``fit`` got, so that ``xpcnn.load``
    gives a model that ``fit`` continues exactly.  ``None`` (the default) leaves out, quietly,
    a loss or optimizer of one's own that a file cannot name; ``True`` raises for it (what
    exact resumption needs); ``False`` writes the weights (and running statistics) alone: the
    smallest file.

    Raises :class:`CheckpointError` when the model cannot be described by the format (a layer
    outside the registry, a config that is not JSON, a non-float parameter); a file-system error
    (missing folder, full disk, no permission) is raised as the same ``OSError`` subclass with
    ``filename`` set to ``path``.  On any error the previous file at ``path`` is untouched, and
    no temporary file is left beside it.
    """
    path = os.fspath(path)
    try:
        body, tensors = state.header_body(model, metadata, _training(model, include_optimizer))
        fmt.write(path, body, tensors)
    except fmt.Bad as exc:
        raise CheckpointError(path, str(exc), action="save") from None


def named_tensors(model) -> dict:
    """``{name: host array}``: the tensors that :func:`save` writes for ``model``'s weights and
    running statistics (``layers.<k>.<name>``), e.g. for ``safetensors.numpy.save_file``."""
    return guarded(None, lambda: dict(state.header_body(model)[1]), "save")


def safetensors_metadata(model, metadata: dict | None = None) -> dict:
    """The ``__metadata__`` strings that make a safetensors file of :func:`named_tensors` an
    xpcnn checkpoint: format, version, architecture, dtype, ``metadata``, and
    ``"checksums": "none"`` (another writer cannot know xpcnn's digests; xpcnn's own files
    always carry them)::

        safetensors.numpy.save_file(xpcnn.checkpoint.named_tensors(model), "m.safetensors",
                                    metadata=xpcnn.checkpoint.safetensors_metadata(model))
        xpcnn.load("m.safetensors")
    """
    body = guarded(None, lambda: state.header_body(model, metadata)[0], "save")
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **body, "checksums": "none"}


def load_layers(path) -> tuple:
    """The validated content (:class:`xpcnn.checkpoint.state.Content`), the layers (on the host)
    and the optimizer's host arrays by name of the checkpoint at ``path``."""
    return guarded(path, lambda: state.read_layers(path))


def restore_training(path, info: dict, extra: dict, leaves: list, optimizer=None) -> dict:
    """:func:`xpcnn.checkpoint.training.restore`, its errors naming ``path``."""
    return guarded(path, lambda: training.restore(info, extra, leaves, optimizer))


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
