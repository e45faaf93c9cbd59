"""Callbacks: code that ``Sequential.fit`` runs at the start and end of training, of each
epoch and of each batch.

``logs`` is a dict of Python floats: after an epoch ``loss``, each metric, ``val_loss`` and
``val_<metric>`` (with validation data) and ``learning_rate``; after a batch ``loss`` (the
batch's value) and ``size``.  Epochs and batches are counted from 0 in the hooks.
A callback stops training by setting ``self.model.stop_training = True``, and may say why
in ``self.model.stop_reason`` (a string; ``fit`` copies it to ``history.stop_reason``).
"""

from __future__ import annotations

import math
import os
import sys
import time

from . import schedules
from ._validate import non_negative, non_negative_int, positive_int
from .distributed import is_chief

__all__ = [
    "BackupAndRestore",
    "Callback",
    "EarlyStopping",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ProgressBar",
    "ReduceLROnPlateau",
]


class Callback:
    """Base class: every hook does nothing.  ``self.model`` is set by ``fit`` before
    ``on_train_begin``; ``self.params`` holds ``epochs``, ``batches`` (per epoch),
    ``samples`` and ``logs``, the names the epoch logs will hold (so that a callback can refuse
    a monitor before the first step rather than after the first epoch)."""

    model = None
    params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_batch_begin(self, batch, logs=None): ...

    def on_batch_end(self, batch, logs=None): ...

    def config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _check_monitor(params: dict, monitor: str, owner: str) -> None:
    """At the start of training: ``monitor`` must be among the names the logs will hold."""
    names = params.get("logs")
    if names is not None:
        _monitor_value(dict.fromkeys(names, 0.0), monitor, owner)


def _monitor_value(logs, monitor: str, owner: str) -> float:
    if monitor not in logs:
        hint = " Pass validation_data to fit, or monitor 'loss'." if monitor.startswith("val_") else ""
        raise ValueError(f"{owner}: monitor={monitor!r} is not among the logged values {sorted(logs)}.{hint}")
    return float(logs[monitor])


def _mode(mode: str, monitor, owner: str) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(
            f"{owner}: Expected the name of a logged value, e.g. 'val_loss'. Received monitor={monitor!r}."
        )
    if mode not in ("auto", "min", "max"):
        raise ValueError(f'{owner}: Expected mode "auto", "min" or "max". Received mode={mode!r}.')
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs.  With ``restore_best=True`` the weights of the best epoch are put back at the end
    (kept as device copies meanwhile).  ``mode``: ``"min"``, ``"max"`` or ``"auto"`` (max for
    names containing "acc").  ``stopped_epoch`` is the epoch (from 0) training stopped after."""

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        restore_best: bool = False,
        mode: str = "auto",
    ):
        self.monitor = monitor
        self.patience = non_negative_int(patience, "patience", "EarlyStopping")
        self.min_delta = non_negative(min_delta, "min_delta", "EarlyStopping")
        self.restore_best = bool(restore_best)
        self.mode = _mode(mode, monitor, "EarlyStopping")

    def on_train_begin(self, logs=None):
        _check_monitor(self.params, self.monitor, "EarlyStopping")
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.best_weights = None
        self.wait = 0
        self.stopped_epoch = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        value = _monitor_value(logs or {}, self.monitor, "EarlyStopping")
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = self.model.copy_parameters()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            self.model.stop_reason = (
                f"EarlyStopping: {self.monitor} did not improve by more than {self.min_delta:g} for "
                f"{self.wait} epoch(s) (best {self.best:.6g} at epoch {self.best_epoch}); stopped after "
                f"epoch {epoch}"
            )

    def on_train_end(self, logs=None):
        if self.restore_best and self.best_weights is not None:
            self.model.restore_parameters(self.best_weights)

    def config(self):
        return {
            "monitor": self.monitor,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "restore_best": self.restore_best,
            "mode": self.mode,
        }


class ModelCheckpoint(Callback):
    """Save the model with ``model.save(path)`` after each epoch, or only when ``monitor``
    improves (``save_best_only=True``).  ``path`` may hold ``{epoch}`` (counted from 1) and
    any logged name, e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.xpcnn"``.  ``saved`` lists the
    paths written."""

    def __init__(self, path, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto"):
        self.path = path
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.mode = _mode(mode, monitor, "ModelCheckpoint")
        self.saved: list = []

    def on_train_begin(self, logs=None):
        if self.save_best_only:
            _check_monitor(self.params, self.monitor, "ModelCheckpoint")
        if isinstance(self.path, str) and self.params.get("logs") is not None:
            self._format(0, dict.fromkeys(self.params["logs"], 0.0))  # a bad {name} fails now
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = _monitor_value(logs, self.monitor, "ModelCheckpoint")
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        path = self._format(epoch, logs) if isinstance(self.path, str) else self.path
        if is_chief(self.model):  # one writer in a distributed fit: rank 0
            self.model.save(path)
        self.saved.append(path)

    def _format(self, epoch, logs) -> str:
        try:
            return self.path.format(epoch=epoch + 1, **logs)
        except KeyError as exc:
            key = exc.args[0]
            hint = " Pass validation_data to fit." if str(key).startswith("val_") else ""
            raise ValueError(
                f"ModelCheckpoint: the path {self.path!r} names {key!r}, which is not among the logged "
                f"values {sorted(logs)}.{hint}"
            ) from None

    def config(self):
        return {"path": self.path, "monitor": self.monitor, "save_best_only": self.save_best_only}


class BackupAndRestore(Callback):
    """Resume a run that was interrupted (Keras's ``BackupAndRestore``): the whole training
    state is written, atomically, to ``path`` at the end of every epoch and, with
    ``save_every=N``, after every ``N`` batches too; when ``fit`` starts and ``path`` exists,
    the run goes on from it, as ``fit(..., resume_from=path)`` does.  So a job killed at any
    moment and started again with the same command ends with the weights of a run that was
    never interrupted (bit for bit: the weights, the optimizer state, the shuffle generator,
    Dropout's masks and the partial epoch sums are all in the backup).  When ``fit`` ends
    normally the backup is deleted (``delete_on_end=False`` keeps it).

    The state saved is the model's, the optimizer's and ``fit``'s; other callbacks (early
    stopping's patience, a progress bar) start afresh on resume.  With batch backups on a
    GPU a backup is written at the next read of the losses (``steps_per_sync``) after each
    ``N`` batches.

    Args:
        path: the backup file (one file; its folder must exist).
        save_every: ``"epoch"``, or an int ``N >= 1``: also every ``N`` batches.
        delete_on_end: remove the backup when training ends without an error.
    """

    def __init__(self, path, save_every="epoch", delete_on_end: bool = True):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"BackupAndRestore: expected path to be a str or os.PathLike. Received {path!r}.")
        self.path = os.fspath(path)
        if save_every != "epoch":
            save_every = positive_int(save_every, "save_every", "BackupAndRestore")
        self.save_every = save_every
        self.delete_on_end = bool(delete_on_end)
        self.written = 0  # backups written by this object

    def backup_path(self) -> str | None:
        """The backup to resume from, or None when there is none."""
        return self.path if os.path.exists(self.path) else None

    def on_train_begin(self, logs=None):
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"BackupAndRestore: the folder {folder!r} of path={self.path!r} does not exist."
            )
        from .checkpoint import format, training

        try:  # a loss or optimizer that the file cannot name fails now, not at the first backup
            training.describe(self.model, self.model.leaves(), None, strict=True)
        except format.Bad as exc:
            raise ValueError(f"BackupAndRestore: the training state cannot be saved: {exc}") from None

    def due(self, batches: int) -> bool:
        """Whether ``batches`` trained since the last backup call for one."""
        return self.save_every != "epoch" and batches >= self.save_every

    def write(self, model) -> None:
        if is_chief(model):  # one writer in a distributed fit: rank 0
            model.save(self.path, include_optimizer=True)
        self.written += 1

    def finished(self) -> None:
        if self.delete_on_end and is_chief(self.model) and os.path.exists(self.path):
            os.unlink(self.path)

    def config(self):
        return {"path": self.path, "save_every": self.save_every, "delete_on_end": self.delete_on_end}


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch to ``schedule(epoch)``
    (a function of the 0-based epoch, or a schedule from :mod:`xpcnn.schedules` read per
    epoch rather than per step)."""

    def __init__(self, schedule):
        if not callable(schedule):
            raise TypeError(f"Expected a function epoch -> learning rate. Received schedule={schedule!r}.")
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = float(self.schedule(epoch))

    def config(self):
        return {"schedule": self.schedule}


class ReduceLROnPlateau(Callback):
    """Divide the learning rate by ``1 / factor`` when ``monitor`` stops improving (Keras's
    callback): installs a :class:`~xpcnn.schedules.ReduceOnPlateau` schedule starting from the
    optimizer's current rate, and feeds it ``logs[monitor]`` after every epoch.

    ``fit`` adds one automatically (``ReduceLROnPlateau(schedule=...)``) when the optimizer's
    learning rate already is, or wraps, a ``ReduceOnPlateau`` schedule.  Passed to several
    ``fit`` calls, the callback goes on with the same schedule while the optimizer stays, and
    installs a new one, from the new rate, when ``fit`` gets another optimizer.
    """

    def __init__(
        self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, *, schedule=None, **kw
    ):
        self.schedule = schedule
        self._given = schedule is not None
        self.options = {"monitor": monitor, "factor": factor, "patience": patience, **kw}
        if schedule is None:  # validate now rather than at the start of training
            schedules.ReduceOnPlateau(1.0, **self.options)
        self.monitor = schedule.monitor if schedule is not None else monitor

    def adopt(self, optimizer) -> None:
        """Take over ``optimizer``'s ReduceOnPlateau schedule when it is the one this callback
        would install (same options): a run resumed from a checkpoint goes on with the saved
        schedule and what it learned.  ``fit`` calls it before training."""
        if self._given or self.schedule is not None:
            return
        found = schedules.find_plateau(optimizer.schedule)
        if (
            found is not None
            and schedules.ReduceOnPlateau(found.initial, **self.options).config() == found.config()
        ):
            self.schedule = found

    def on_train_begin(self, logs=None):
        _check_monitor(self.params, self.monitor, "ReduceLROnPlateau")
        optimizer = self.model.optimizer
        if not self._given and (
            self.schedule is None or schedules.find_plateau(optimizer.schedule) is not self.schedule
        ):  # the first fit, or a fit with another optimizer
            self.schedule = schedules.ReduceOnPlateau(optimizer.learning_rate, **self.options)
            optimizer.learning_rate = self.schedule

    def on_epoch_end(self, epoch, logs=None):
        self.schedule.observe(_monitor_value(logs or {}, self.monitor, "ReduceLROnPlateau"))

    def config(self):
        return dict(self.options) if self.schedule is None else {"schedule": self.schedule}


class ProgressBar(Callback):
    """Progress of ``fit``: tqdm bars, or plain lines without tqdm (or with ``style="line"``).

    With up to ``max_lines`` epochs: one bar per epoch (batches done, running loss refreshed
    every ``refresh_every`` batches, the epoch's logs at its end) or one line per epoch.  With
    more epochs (say 500 epochs of XOR): a single bar over the epochs, or a line every
    ``epochs // max_lines`` epochs and at the last.  ``file`` defaults to ``sys.stderr`` for
    tqdm and ``sys.stdout`` for lines.  ``fit(progress=False)`` adds no progress bar at all.
    """

    def __init__(self, style: str = "auto", file=None, refresh_every: int = 10, max_lines: int = 20):
        if style not in ("auto", "bar", "line"):
            raise ValueError(f'Expected style "auto", "bar" or "line". Received style={style!r}.')
        self.style = style
        self.file = file
        self.refresh_every = positive_int(refresh_every, "refresh_every", "ProgressBar")
        self.max_lines = positive_int(max_lines, "max_lines", "ProgressBar")
        self._tqdm = None
        if style != "line":
            try:
                from tqdm.auto import tqdm
            except ImportError:
                if style == "bar":
                    raise ImportError("ProgressBar(style='bar') needs tqdm: pip install tqdm") from None
            else:
                self._tqdm = tqdm
        self.bar = None

    def _make_bar(self, total, desc, unit):
        return self._tqdm(total=total, desc=desc, unit=unit, leave=True, file=self.file, dynamic_ncols=True)

    def on_train_begin(self, logs=None):
        epochs = self.params.get("epochs", 0)
        self._per_epoch = epochs <= self.max_lines
        self._every = 1 if self._per_epoch else max(1, epochs // self.max_lines)
        self._train_start = time.perf_counter()
        if self._tqdm is not None and not self._per_epoch:
            self.bar = self._make_bar(epochs, "training", "epoch")

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._sum = 0.0
        self._count = 0
        if self._tqdm is not None and self._per_epoch:
            self.bar = self._make_bar(
                self.params.get("batches"), f"epoch {epoch + 1}/{self.params.get('epochs')}", "batch"
            )

    def on_batch_end(self, batch, logs=None):
        if self.bar is None or not self._per_epoch:
            return
        logs = logs or {}
        self._sum += logs.get("loss", 0.0) * logs.get("size", 1)
        self._count += logs.get("size", 1)
        self.bar.update(1)
        if (batch + 1) % self.refresh_every == 0:
            self.bar.set_postfix(loss=f"{self._sum / max(self._count, 1):.4g}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        text = format_logs(logs or {})
        epochs = self.params.get("epochs")
        if self.bar is not None:
            if not self._per_epoch:
                self.bar.update(1)
            self.bar.set_postfix_str(text, refresh=True)
            if self._per_epoch:
                self.bar.close()
                self.bar = None
        elif (epoch + 1) % self._every == 0 or epoch + 1 == epochs:
            seconds = time.perf_counter() - (self._start if self._per_epoch else self._train_start)
            print(
                f"epoch {epoch + 1}/{epochs} - {text} - {seconds:.1f}s",
                file=self.file or sys.stdout,
                flush=True,
            )

    def on_train_end(self, logs=None):
        if self.bar is not None:  # the single bar, or an epoch stopped midway
            self.bar.close()
            self.bar = None

    def config(self):
        return {"style": self.style, "max_lines": self.max_lines}


def format_logs(logs: dict) -> str:
    """``"loss 0.1234 - accuracy 0.9800 - learning_rate 0.01"``."""
    return " - ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items())
