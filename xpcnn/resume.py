"""Resuming: a checkpoint's weights, optimizer and progress put back into a model built again.

Keras's ``BackupAndRestore`` and PyTorch's ``load_state_dict`` pattern: the same script builds
the same model (and optimizer) and the checkpoint's values are loaded into those objects, so
references the script holds stay valid.  :func:`plan` checks that the file describes
the same architecture (layer types, configurations and parameter shapes, in order) and that a
given optimizer has the saved class and hyperparameters, and only then changes anything.
"""

from __future__ import annotations

from . import checkpoint

__all__ = ["Plan", "plan"]


def _comparable(layer) -> dict:
    """A layer's config without its progress counters (``Layer.progress_config``), as JSON
    values (so that ``(1, 2)`` and ``[1, 2]`` compare equal)."""
    import json

    config = {k: v for k, v in layer.config().items() if k not in layer.progress_config}
    return json.loads(json.dumps(config))


def _check_same(model, layers: list, where: str) -> list:
    """The loaded leaves, paired with ``model``'s after checking that they describe the same
    network (types, configurations, parameter shapes, dtype)."""
    ours = model.leaves()
    theirs = [leaf for layer in layers for leaf in layer.leaves()]
    if [type(a) for a in ours] != [type(b) for b in theirs]:
        saved = ", ".join(type(b).__name__ for b in theirs)
        mine = ", ".join(type(a).__name__ for a in ours)
        raise ValueError(f"{where}: the checkpoint holds the layers [{saved}], the model [{mine}].")
    for a, b in zip(ours, theirs, strict=True):
        if not a.built:
            raise ValueError(
                f"{where}: {a.label} is not built yet; build the model first (model.build(input_shape))."
            )
        if _comparable(a) != _comparable(b):
            raise ValueError(
                f"{where}: {a.label} has the configuration {_comparable(a)}, the checkpoint's {_comparable(b)}."
            )
        if a.param_names and b.dtype != model.dtype:
            raise ValueError(f"{where}: the checkpoint's {b.label} is {b.dtype}, the model {model.dtype}.")
    return list(zip(ours, theirs, strict=True))


class Plan:
    """A checked resume (:func:`plan`): ``loss``, ``metrics``, ``optimizer`` and ``progress``
    from the checkpoint (each may be None), and :meth:`apply`, which puts the checkpoint's
    tensors, progress counters and optimizer state into the model and cannot fail."""

    def __init__(self, model, pairs: list, parts: dict):
        self.model, self.pairs = model, pairs
        self.loss, self.metrics, self.optimizer = parts["loss"], parts["metrics"], parts["optimizer"]
        self.progress, self._commit = parts["progress"], parts["commit"]

    def apply(self) -> None:
        model = self.model
        for a, b in self.pairs:
            values = b.tensors()
            if values:
                a.set_tensors({k: model.placement.asarray(v) for k, v in values.items()})
            for key in a.progress_config:
                setattr(a, key, getattr(b, key))
        if self._commit is not None:
            self._commit()


def plan(model, path, optimizer=None, where: str = "fit") -> Plan:
    """Read and check the checkpoint at ``path`` for ``model`` (built, same architecture) and
    ``optimizer`` (given: it must have the saved class and hyperparameters; else the saved
    optimizer is built anew): raises ``CheckpointError`` for a bad file and ``ValueError``
    naming what differs for another model's checkpoint.  Nothing is changed until the
    returned plan is applied."""
    content, layers, extra = checkpoint.load_layers(path)
    pairs = _check_same(model, layers, f"{where}: resuming from {str(path)!r}")
    parts = checkpoint.restore_training(path, content.training or {}, extra, model.leaves(), optimizer)
    return Plan(model, pairs, parts)
