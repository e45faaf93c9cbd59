"""Data-parallel training on many processes: MPI (mpi4py), and NCCL for CuPy arrays.

Each process (rank) holds the whole model.  ``fit(..., distributed=comm)`` keeps
``batch_size`` the *global* batch: every rank draws the same permutation, rank ``r`` takes its
contiguous share of each global batch (``n_r`` samples, possibly none), and after backward the
gradients are combined in one all-reduce as

    g = sum_r (n_r / N) g_r                                                     (eq. 34)

with ``N = sum_r n_r`` the global batch and ``g_r`` the gradient of rank ``r``'s mean loss:
the gradient of the mean loss over the global batch, exactly (plain averaging of ``g_r`` is
wrong whenever the shares differ, e.g. on an uneven last batch).  The loss travels in the same
buffer, weighted the same way, so every rank sees the same global loss and takes the same
non-finite decision; every rank then applies the same optimizer step to the same parameters,
so the replicas stay identical without ever sending parameters again.  BatchNorm uses each
rank's own batch statistics and Dropout each rank's own masks (as PyTorch's
DistributedDataParallel without SyncBatchNorm): such a network is trained correctly but not
bit-identically to one process.

Launch: ``mpiexec -n 4 python -m mpi4py train.py`` (``python -m mpi4py`` aborts the whole job
when one rank raises); in the script, ``comm = xpcnn.distributed.mpi()`` and
``model.fit(x, y, ..., distributed=comm)``.  :func:`single` is a communicator of one process
that does nothing, so the same script runs without MPI.
"""

from __future__ import annotations

import math
import sys
import time
import traceback

from . import backend

__all__ = ["ABORT_DELAY", "Communicator", "MPICommunicator", "is_chief", "mpi", "single"]

#: Seconds a failing rank waits, after printing its error, before it aborts the job: mpiexec
#: may drop the output of processes that MPI_Abort tears down.
ABORT_DELAY = 0.5


class Communicator:
    """One process, no communication: what :class:`MPICommunicator` does with ``size == 1``."""

    rank = 0
    size = 1
    local_rank = 0
    backend_name = "none"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size}, all-reduce={self.backend_name!r})"

    # --------------------------------------------------------------- primitives
    def barrier(self) -> None:
        """Wait until every rank got here."""

    def broadcast(self, value, root: int = 0):
        """A picklable Python ``value`` from rank ``root`` to every rank."""
        return value

    def allgather(self, value) -> list:
        """Every rank's picklable ``value``, in rank order."""
        return [value]

    def _allreduce(self, flat):
        """The element-wise sum over the ranks of the 1-D array ``flat`` (a new array)."""
        return flat

    # ---------------------------------------------------------------- on arrays
    def allreduce(self, arrays: list) -> list:
        """Element-wise sums over the ranks of ``arrays`` (one dtype, one device), packed into
        one buffer: one collective call whatever their number."""
        if not arrays:
            return []
        xp = backend.array_namespace(arrays[0])
        flat = xp.concat([xp.reshape(a, (-1,)) for a in arrays])
        total = self._allreduce(flat)
        out, start = [], 0
        for a in arrays:
            size = math.prod(a.shape)
            out.append(xp.reshape(total[start : start + size], tuple(a.shape)))
            start += size
        return out

    def allreduce_floats(self, values: list) -> list[float]:
        """Sums over the ranks of host floats (metric sums, counts), in float64."""
        if self.size == 1:
            return [float(v) for v in values]
        place = backend.placement("cpu")
        return [
            float(v) for v in self.allreduce([place.asarray([float(v) for v in values], dtype="float64")])[0]
        ]

    def shard(self, index, n: int | None = None):
        """This rank's contiguous share of a global batch ``index`` (a slice or a 1-D index
        array): ``index[lo:hi]`` with ``lo = N r // size``, ``hi = N (r + 1) // size``."""
        if isinstance(index, slice):
            start, stop, _ = index.indices(n if n is not None else index.stop)
            count = stop - start
            return slice(start + count * self.rank // self.size, start + count * (self.rank + 1) // self.size)
        count = int(index.shape[0])
        return index[count * self.rank // self.size : count * (self.rank + 1) // self.size]

    def allreduce_gradients(self, model, local_size: int, global_size: int, loss=None):
        """Replace every gradient of ``model`` (after its ``backward``) by eq. 34, the global
        batch's gradient, ``sum_r (n_r / N) g_r``, in one all-reduce; ``local_size`` is
        ``n_r``, ``global_size`` ``N``.  A rank with no sample passes ``local_size=0`` and
        contributes zeros.  ``loss`` (this rank's mean loss, a 0-d array) rides in the same
        buffer; returns the global mean loss (or None).  For custom loops around
        :meth:`~xpcnn.Sequential.backward` and an optimizer step."""
        if global_size <= 0 or not 0 <= local_size <= global_size:
            raise ValueError(
                f"allreduce_gradients: expected 0 <= local_size <= global_size and global_size > 0. Received "
                f"local_size={local_size}, global_size={global_size}."
            )
        weight = local_size / global_size
        leaves = [leaf for leaf in model.leaves() if leaf.param_names]
        xp = model.placement.xp
        parts = []
        for leaf in leaves:
            for name in leaf.param_names:
                grad = leaf.grads.get(name) if local_size else None
                if local_size and grad is None:
                    raise RuntimeError(
                        f"allreduce_gradients: {leaf.label} has no gradient for {name!r}; call backward first."
                    )
                parts.append(grad * weight if grad is not None else xp.zeros_like(getattr(leaf, name)))
        if loss is not None:
            value = loss * weight if local_size else model.placement.zeros((), model.dtype)
            parts.append(xp.reshape(value, (1,)))
        if not parts:
            return None
        reduced = self.allreduce(parts) if self.size > 1 or weight != 1 else parts
        k = 0
        for leaf in leaves:
            leaf.grads = {}
            for name in leaf.param_names:
                leaf.grads[name] = reduced[k]
                k += 1
        return xp.reshape(reduced[k], ()) if loss is not None else None

    def broadcast_model(self, model, root: int = 0) -> None:
        """Rank ``root``'s parameters, running statistics and optimizer state to every rank."""
        if self.size == 1:
            return
        leaves = model.leaves()
        tensors = [(leaf, name, value) for leaf in leaves for name, value in leaf.tensors().items()]
        optimizer = model.optimizer
        slots = (
            []
            if optimizer is None
            else [(key, slot) for key, entry in optimizer.state.items() for slot in optimizer.slots]
        )
        arrays = [v for _, _, v in tensors] + [optimizer.state[key][slot] for key, slot in slots]
        if not arrays:
            return
        host = [backend.to_host(a) for a in arrays]
        values = self.broadcast(host if self.rank == root else None, root)
        for (leaf, name, _), value in zip(tensors, values[: len(tensors)], strict=True):
            setattr(leaf, name, model.placement.asarray(value))
        for (key, slot), value in zip(slots, values[len(tensors) :], strict=True):
            optimizer.state[key][slot] = model.placement.asarray(value)
        if optimizer is not None:
            optimizer.iterations = self.broadcast(optimizer.iterations, root)

    def check_same_model(self, model, where: str = "fit") -> None:
        """Refuse models that differ across the ranks (layer types, parameter names and
        shapes, dtype), naming the first layer that differs and the ranks."""
        mine = [
            (leaf.label, [(k, tuple(v.shape)) for k, v in leaf.tensors().items()]) for leaf in model.leaves()
        ]
        mine.append(("dtype", model.dtype))
        every = self.allgather(mine)
        for rank, theirs in enumerate(every):
            if theirs == every[0]:
                continue
            for a, b in zip(every[0], theirs, strict=False):
                if a != b:
                    raise ValueError(
                        f"{where}: the model differs across the ranks: rank 0 has {a[0]} {a[1]}, rank {rank} has "
                        f"{b[0]} {b[1]}; every rank must build the same model."
                    )
            raise ValueError(
                f"{where}: the model differs across the ranks: rank 0 has {len(every[0]) - 1} layers, "
                f"rank {rank} {len(theirs) - 1}."
            )

    def abort(self, code: int = 1) -> None:
        """End the whole job (every rank) with ``code``."""
        raise SystemExit(code)


class MPICommunicator(Communicator):
    """A communicator over an mpi4py ``Comm`` (``COMM_WORLD`` by default).

    The all-reduce of host (NumPy) arrays is MPI's ``Allreduce`` on the packed buffer; for
    CuPy arrays it is NCCL's when ``cupy.cuda.nccl`` is there (one GPU per rank, chosen from
    the local rank), else the buffer is staged through the host for MPI (and a message says
    so once).  Created by :func:`mpi`."""

    def __init__(self, comm, abort_on_error: bool = True):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        local = comm.Split_type(_mpi().COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = local.Get_rank()
        local.Free()
        self.backend_name = "mpi"
        self._nccl = None
        if abort_on_error and self.size > 1:
            _install_except_hook(self)

    def barrier(self) -> None:
        self.comm.Barrier()

    def broadcast(self, value, root: int = 0):
        return self.comm.bcast(value, root=root)

    def allgather(self, value) -> list:
        return self.comm.allgather(value)

    def _allreduce(self, flat):
        if self.size == 1:
            return flat
        if backend.is_host_array(flat):
            out = backend.host_empty_like(flat)
            self.comm.Allreduce(backend.host_contiguous(flat), out, op=_mpi().SUM)
            return out
        place = backend.placement_of(flat)
        if place.is_cuda:
            if self._nccl is None:
                self._nccl = backend.nccl_communicator(self, place)
                self.backend_name = "nccl" if self._nccl is not False else "mpi (host-staged)"
            if self._nccl is not False:
                return backend.nccl_allreduce(self._nccl, flat)
        host = backend.to_host(flat)
        out = backend.host_empty_like(host)
        self.comm.Allreduce(host, out, op=_mpi().SUM)
        return place.asarray(out)

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            'xpcnn.distributed.mpi() needs mpi4py and an MPI library: pip install "xpcnn[mpi]" '
            "(mpi4py and the mpich wheel), then launch with mpiexec -n N python -m mpi4py script.py."
        ) from exc
    return MPI


def mpi(comm=None, *, abort_on_error: bool = True) -> Communicator:
    """The communicator of this MPI job (``comm``: an mpi4py communicator, default
    ``COMM_WORLD``).  ``abort_on_error``: an uncaught exception on any rank prints its
    traceback with the rank and aborts the whole job (``MPI_Abort``), so that the other ranks
    never wait for it forever."""
    MPI = _mpi()
    return MPICommunicator(MPI.COMM_WORLD if comm is None else comm, abort_on_error)


def single() -> Communicator:
    """A communicator of one process: the same script without MPI."""
    return Communicator()


def _install_except_hook(comm: MPICommunicator) -> None:
    previous = sys.excepthook

    def hook(kind, value, tb):
        try:
            text = "".join(traceback.format_exception(kind, value, tb))
            sys.stderr.write(f"xpcnn.distributed: rank {comm.rank} of {comm.size} failed:\n{text}")
            sys.stderr.flush()
            time.sleep(ABORT_DELAY)  # the launcher forwards the message before the job is torn down
        finally:
            try:
                comm.abort(1)
            except Exception:  # pragma: no cover
                previous(kind, value, tb)

    sys.excepthook = hook


# --------------------------------------------------------------------- fit's side
def check_communicator(comm, where: str):
    """``fit``'s ``distributed``: None or a :class:`Communicator`."""
    if comm is None or isinstance(comm, Communicator):
        return comm
    raise TypeError(
        f"{where}: expected distributed to be an xpcnn.distributed communicator (xpcnn.distributed.mpi() or "
        f"single()). Received {type(comm).__name__}: {comm!r:.80}."
    )


def batch_size_of(index, n: int) -> int:
    """The number of samples a batch index (slice or index array) selects."""
    if isinstance(index, slice):
        return len(range(*index.indices(n)))
    return int(index.shape[0])


def prepare(comm: Communicator, model, optimizer, train, seed, where: str):
    """Before the first step of a distributed ``fit``: refuse sources read batch by batch
    (their batches cannot be split the same way on every rank) and models that differ across
    the ranks; make the shuffle seed the same everywhere (an int must agree, ``None`` becomes
    rank 0's fresh seed, a Generator rank 0's state); broadcast rank 0's parameters, running
    statistics and optimizer state.  Returns the seed to use."""
    from . import init

    if train.kind not in ("arrays", "samples"):
        raise ValueError(
            f"{where}: distributed training splits each global batch by samples; give arrays or a data set "
            "with __len__ and __getitem__ (samples), not a source of batches."
        )
    comm.check_same_model(model, where)
    if seed is None:
        seed = comm.broadcast(int(init.rng_from(None).integers(2**63)) if comm.rank == 0 else None)
    elif hasattr(seed, "bit_generator"):
        state = comm.broadcast(init.rng_state(seed) if comm.rank == 0 else None)
        seed = seed if comm.rank == 0 else init.rng_from_state(state)
    else:
        seeds = comm.allgather(seed)
        if any(s != seeds[0] for s in seeds):
            raise ValueError(
                f"{where}: the ranks were given different seeds {seeds}; give every rank the same seed."
            )
    model.optimizer = optimizer
    comm.broadcast_model(model)
    return seed


def train_step(model, comm: Communicator, x, y, global_size: int, value_and_gradient, check):
    """One step of distributed mini-batch gradient descent: this rank's forward and backward on
    its share ``(x, y)`` of the global batch (``None`` when it has no sample), the gradients
    and the loss combined by eq. 34 in one all-reduce, then the non-finite policy ``check``
    and the optimizer step, identical on every rank.  Returns the global loss and this rank's
    prediction (None without samples)."""
    local = 0 if x is None else int(x.shape[0])
    prediction, value = None, None
    if local:
        prediction = model._chain_forward(x)
        value, gradient = value_and_gradient(prediction, y)
        model._chain_backward(gradient, input_gradient=False)
    total = comm.allreduce_gradients(model, local, global_size, loss=value if local else 0.0)
    mask = check(total)
    model.optimizer.step(model._leaves, mask=mask)
    return total, prediction


def is_chief(model) -> bool:
    """Whether this process writes files for ``model``: always, except on the ranks other
    than 0 of a distributed ``fit``."""
    comm = getattr(model, "distributed", None)
    return comm is None or comm.rank == 0
