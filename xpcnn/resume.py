"""Resuming: a checkpoint's weights, optimizer and progress put back into a model built again.

Keras's ``BackupAndRestore`` and PyTorch's ``load_state_dict`` pattern: the same script builds
the same model (and optimizer) and the checkpoint's values are loaded into those objects, so
references the script holds stay valid.  :func:`restore_into` checks that the file describes
the same architecture (layer types, configurations and parameter shapes, in order) and that a
given optimizer has the saved class and hyperparameters, and only then changes anything.
"""

from __future__ import annotations

from . import checkpoint

__all__ = ["restore_into"]


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


def restore_into(model, path, optimizer=None, where: str = "fit") -> dict | None:
    """Load the checkpoint at ``path`` into ``model`` (built, same architecture): its tensors,
    its loss and metrics (set where the model has none), its optimizer (its state loaded into
    ``optimizer`` when one is given, else a new one), and return its progress (``None`` in a
    checkpoint written outside ``fit``).  Raises ``CheckpointError`` for a bad file and
    ``ValueError`` naming what differs for another model's checkpoint; nothing is changed then.
    """
    content, layers, extra = checkpoint.load_layers(path)
    pairs = _check_same(model, layers, f"{where}: resuming from {str(path)!r}")
    parts = checkpoint.restore_training(path, content.training or {}, extra, model.leaves(), optimizer)
    for a, b in pairs:  # every check passed: the values go in
        values = b.tensors()
        if values:
            a.set_tensors({k: model.placement.asarray(v) for k, v in values.items()})
        for key in a.progress_config:
            setattr(a, key, getattr(b, key))
    if parts["loss"] is not None and model.loss is None:
        model.loss = parts["loss"]
    if parts["metrics"] is not None and not model.metrics:
        model.metrics = parts["metrics"]
    if parts["optimizer"] is not None:
        model.optimizer = parts["optimizer"]
    return parts["progress"]
