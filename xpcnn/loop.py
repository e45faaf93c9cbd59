"""The epoch loop of ``Sequential.fit`` and what it returns, out of the model's module.

:class:`History` (one value per epoch and logged name) and :class:`NonFiniteLossError` are
public (``xpcnn.History``, ``xpcnn.NonFiniteLossError``).  The rest is ``fit``'s machinery:
where a run starts (from scratch, at ``initial_epoch`` or from a checkpoint's progress), and
``_EpochLoop``, one epoch of ``train_step`` calls with the losses read every
``steps_per_sync`` batches, the non-finite policy, backups and the shares of a distributed
run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import KeysView

from . import backend, init
from . import callbacks as cb
from . import distributed as dist
from .data import Exhausted as _Exhausted

__all__ = ["History", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """``fit`` met a NaN or infinite loss.  ``epoch`` and ``batch`` count from 1; the update of
    that batch was not applied."""

    def __init__(self, message: str, epoch: int, batch: int, value: float):
        super().__init__(message)
        self.epoch, self.batch, self.value = epoch, batch, value


class History:
    """What ``fit`` returns: ``history[key]`` is a list with one float per epoch.

    Keys: ``loss``, each metric's name, ``val_loss`` and ``val_<metric>`` with validation
    data, ``learning_rate`` (the rate of the epoch's last step).  ``epoch`` lists the epochs
    (from 0); ``stop_reason`` says why training ended early (``None`` otherwise).
    """

    def __init__(self):
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}
        self.stop_reason: str | None = None

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key) -> bool:
        return key in self.history

    def keys(self) -> KeysView[str]:
        return self.history.keys()

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        return f"History(epochs={len(self)}, last={last})"

    def as_dict(self) -> dict:
        """``{"epoch", "history", "stop_reason"}``: plain values (what a checkpoint keeps)."""
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()},
                "stop_reason": self.stop_reason}  # fmt: skip

    @classmethod
    def from_dict(cls, values: dict) -> History:
        history = cls()
        history.epoch = list(values["epoch"])
        history.history = {k: list(v) for k, v in values["history"].items()}
        history.stop_reason = values.get("stop_reason")
        return history


class _Start:
    """Where ``fit`` begins: epoch, batch, shuffle generator, history, partial epoch sums."""

    def __init__(self, epoch: int, batch: int, rng, history: History, partial: dict):
        self.epoch, self.batch, self.rng, self.history, self.partial = epoch, batch, rng, history, partial


def _start(reached, initial_epoch: int, seed, shuffle: bool, n) -> _Start:
    """The start of a fit: from a checkpoint's progress ``reached`` (checked by
    :func:`_check_resume`), or at ``initial_epoch`` (the shuffle generator advanced past the
    skipped epochs' permutations)."""
    if reached is None:
        rng = init.rng_from(seed)
        if shuffle:
            for _ in range(initial_epoch):
                rng.permutation(n)
        return _Start(initial_epoch, 0, rng, History(), {})
    rng = init.rng_from_state(reached["rng"]) if reached["rng"] is not None else init.rng_from(seed)
    history = History.from_dict(reached["history"])
    return _Start(reached["epoch"], reached["batch"], rng, history, reached["partial"])


def _check_resume(reached: dict, initial_epoch: int, n, batch_size: int, steps) -> None:
    """Refuse a resume that this run cannot continue exactly (before anything changes)."""
    if initial_epoch:
        raise ValueError(
            f"fit: initial_epoch={initial_epoch} and a resumed run: the checkpoint says where to start "
            f"(epoch {reached['epoch']}, batch {reached['batch']})."
        )
    if reached["batch"] and n is None:
        raise ValueError(
            "fit: the checkpoint stopped in the middle of an epoch, and an iterable data source cannot "
            "be rewound to that batch; resume from an end-of-epoch backup, or use arrays or a data set "
            "with __len__ and __getitem__."
        )
    if reached["batch"] and (reached.get("samples"), reached.get("batch_size")) != (n, batch_size):
        raise ValueError(
            f"fit: the checkpoint stopped in the middle of an epoch of {reached.get('samples')} samples in "
            f"batches of {reached.get('batch_size')}; this run has {n} samples in batches of {batch_size}. "
            "Resume with the same data and batch_size."
        )
    if steps is not None and reached["batch"] > steps:
        raise ValueError(
            f"fit: the checkpoint stopped at batch {reached['batch']}, past this epoch's {steps}."
        )


class _EpochLoop:
    """One epoch of ``fit``: the batches, each a ``train_step``, with the losses read every
    ``steps_per_sync`` batches and the batch callbacks run after each read."""

    def __init__(self, model, callbacks, value_and_gradient, metrics, steps_per_sync, on_nonfinite):
        self.model, self.metrics = model, metrics
        self.value_and_gradient = value_and_gradient
        self.steps_per_sync, self.on_nonfinite = steps_per_sync, on_nonfinite
        self.batch_begin = [c for c in callbacks if type(c).on_batch_begin is not cb.Callback.on_batch_begin]
        self.batch_end = [c for c in callbacks if type(c).on_batch_end is not cb.Callback.on_batch_end]
        self.stop_reason: str | None = None
        self.backup = None  # a BackupAndRestore, written at its batch interval
        self.history: History | None = None
        self.sizes = (0, 0)  # samples, batch_size
        self.epoch_rng: dict | None = None  # the shuffle generator's state when the epoch began
        self.comm = None  # fit(..., distributed=comm)

    def fit_state(self, epoch: int, batch: int, rng: dict | None, partial: dict) -> dict:
        """``model.fit_state`` at ``batch`` (batches done) of ``epoch``."""
        assert self.history is not None
        n, batch_size = self.sizes
        return {"epoch": epoch, "batch": batch, "rng": rng, "history": self.history.as_dict(),
                "partial": partial, "samples": n, "batch_size": batch_size}  # fmt: skip

    def run(self, epoch: int, epochs: int, train, indices, steps, skip: int = 0, partial=None):
        """Train one epoch of ``train`` (an ArrayPair or SourcePair) from batch ``skip`` on
        (``partial``: the sums of the batches before); return its logs, or None after a
        non-finite loss with "stop"."""
        self.where = (epoch, epochs, steps)
        with self.model.placement.activate():
            return self._run(train, indices, steps, skip, partial or {})

    def _run(self, train, indices, steps, skip: int, partial: dict) -> dict | None:
        model, xp = self.model, self.model.placement.xp
        total, seen = partial.get("loss", 0.0), int(partial.get("size", 0))
        comm = self.comm
        own = comm is None or comm.rank == 0  # the partial metric sums are global: rank 0 holds them
        sums = {name: partial.get("metric." + name, 0.0) if own else 0.0 for name in self.metrics}
        pending: list = []  # (batch, loss on the device, size) since the last read
        ok = None  # the device flag of the masked steps
        on_host = self.steps_per_sync == 1
        if skip:  # a resumed epoch: its permutation is drawn again, its first batches skipped
            indices = itertools.islice(indices, skip, None)

        def check(value):
            nonlocal ok
            if on_host:
                return _host_check(value)  # the one device -> host read of the batch
            finite = xp.isfinite(value)
            ok = finite if ok is None else xp.logical_and(ok, finite)
            return ok

        since_backup = 0
        batch = skip - 1
        for batch, index in enumerate(indices, start=skip):
            try:
                if comm is None:
                    xb, yb = train.take(index)
                else:  # this rank's share of the global batch (maybe none)
                    size_global = dist.batch_size_of(index, len(train))
                    local = comm.shard(index, len(train))
                    xb, yb = train.take(local) if dist.batch_size_of(local, len(train)) else (None, None)
            except _Exhausted:
                if train.steps_per_epoch is not None:
                    raise ValueError(
                        f"fit: the data source ran out after {batch - skip} batches of epoch {self.where[0] + 1}; "
                        f"with steps_per_epoch={train.steps_per_epoch} it must give that many batches an epoch "
                        "(one iterator runs on across the epochs, as in Keras)."
                    ) from None
                batch -= 1
                break
            for c in self.batch_begin:
                c.on_batch_begin(batch, {})
            try:
                if comm is None:
                    value, prediction = model._train_step(xb, yb, self.value_and_gradient, check)
                else:
                    value, prediction = dist.train_step(
                        model, comm, xb, yb, size_global, self.value_and_gradient, check
                    )
            except _NonFinite as bad:
                return self._nonfinite(batch, bad.value, 0)
            size = int(xb.shape[0]) if xb is not None else 0
            if prediction is not None:
                for name, metric in self.metrics.items():
                    sums[name] = sums[name] + metric(prediction, yb) * size
            pending.append((batch, value, size if comm is None else size_global))
            if len(pending) == self.steps_per_sync or batch == (steps or 0) - 1:
                total, seen, stopped = self._flush(pending, batch, total, seen)
                if stopped is not None:
                    return None
                since_backup += len(pending)
                pending, ok = [], None
                if self.backup is not None and self.backup.due(since_backup) and batch != (steps or 0) - 1:
                    since_backup = 0
                    metric_sums = self._global(list(sums.values()))
                    done = {
                        "loss": total,
                        "size": seen,
                        **{"metric." + k: v for k, v in zip(sums, metric_sums, strict=True)},
                    }
                    model.fit_state = self.fit_state(self.where[0], batch + 1, self.epoch_rng, done)
                    self.backup.write(model)
                if model.stop_training:
                    break
        if pending:  # an iterable's last group (its length was not known)
            total, seen, stopped = self._flush(pending, batch, total, seen)
            if stopped is not None:
                return None
        if seen == 0:
            raise ValueError(f"fit: the data source gave no batch in epoch {self.where[0] + 1}.")
        logs = {"loss": total / seen}
        logs.update({name: s / seen for name, s in zip(sums, self._global(list(sums.values())), strict=True)})
        return logs

    def _global(self, values: list) -> list[float]:
        """Host floats of this rank's sums, summed over the ranks when training is distributed."""
        return [float(v) for v in values] if self.comm is None else self.comm.allreduce_floats(values)

    def _flush(self, pending, batch: int, total: float, seen: int):
        """Read the pending losses; run the batch callbacks.  Returns the new loss sum and
        sample count, and ``True`` where a non-finite loss stopped training (None otherwise)."""
        read = self._read(pending)
        for (b, _, size_b), current in zip(pending, read, strict=True):
            if not math.isfinite(current):
                self._nonfinite(b, current, batch - b + 1)
                return total, seen, True
            total += current * size_b
            seen += size_b
            for c in self.batch_end:
                c.on_batch_end(b, {"loss": current, "size": size_b})
        return total, seen, None

    def _read(self, pending) -> list[float]:
        """The pending losses as Python floats, in one device -> host transfer."""
        if len(pending) == 1:
            return [float(pending[0][1])]
        xp = self.model.placement.xp
        return [float(v) for v in backend.to_host(xp.stack([value for _, value, _ in pending]))]

    def _nonfinite(self, batch: int, value: float, masked: int):
        """The policy for a non-finite loss at ``batch``; ``masked`` steps (that one and the
        later ones of its group) were masked and are taken off the optimizer's count."""
        optimizer = self.model.optimizer
        optimizer.iterations -= masked
        epoch, epochs, steps = self.where
        message = (
            f"fit: the loss became {value} at epoch {epoch + 1}/{epochs}, batch {batch + 1}/{steps or '?'}; "
            "this batch's update was not applied. Hints: lower the learning rate, check x and y for "
            "NaN or inf values, scale the inputs."
        )
        if self.on_nonfinite == "raise":
            raise NonFiniteLossError(message, epoch + 1, batch + 1, value)
        self.stop_reason = message
        return None


def _batches(feed, batch_size: int, comm=None):
    """Every batch ``(x, y)`` of ``feed`` in order (evaluation and prediction); with ``comm``
    this rank's share of each (shares without samples skipped)."""
    for index in feed.epoch(batch_size, False, None):
        if comm is not None:
            index = comm.shard(index, len(feed))
            if dist.batch_size_of(index, len(feed)) == 0:
                continue
        try:
            yield feed.take(index)
        except _Exhausted:
            return


class _NonFinite(Exception):
    """Internal: the host check of a step found a non-finite loss (nothing was changed)."""

    def __init__(self, value: float, loss):
        self.value, self.loss = value, loss


def _host_check(value) -> None:
    """The non-finite policy on the host: read ``E``; a NaN or infinite one stops the step."""
    current = float(value)
    if not math.isfinite(current):
        raise _NonFinite(current, value)
