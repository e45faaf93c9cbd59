"""Data that does not fit in memory (issue 12): fit, evaluate and predict on data sets read
sample by sample or batch by batch, an IDX file through a memory map, and validation_split.
A source holding the same data as arrays must train to bit-identical weights."""

from __future__ import annotations

import numpy as np
import pytest

import xpcnn
from xpcnn.callbacks import BackupAndRestore, Callback
from xpcnn.data import BatchSequence
from xpcnn.datasets import IDXDataset, load_mnist_idx

RNG = np.random.default_rng(4)
X = RNG.normal(size=(30, 1, 5, 5))
Y = RNG.integers(0, 3, 30)
FIT = {
    "loss": "softmax_crossentropy",
    "optimizer": "adam",
    "epochs": 2,
    "progress": False,
    "metrics": ["accuracy"],
}


def net():
    return xpcnn.Sequential(
        [
            xpcnn.Convolutional((1, 5, 5), 2, 2, seed=1),
            xpcnn.Tanh(),
            xpcnn.Flatten(),
            xpcnn.Dense(32, 3, seed=2),
        ],
        dtype="float64",
    )


def bits(model):
    return [xpcnn.to_host(v).tobytes() for leaf in model.leaves() for v in leaf.tensors().values()]


class Samples:
    """A PyTorch-style map data set: one (x, y) sample per index."""

    def __init__(self, x, y, batched=False):
        self.x, self.y, self.reads = x, y, 0
        if batched:
            self.__getitems__ = self._many

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.reads += 1
        return self.x[i], self.y[i]

    def _many(self, indices):
        self.reads += len(indices)
        return self.x[indices], self.y[indices]


class Batches(BatchSequence):
    def __init__(self, x, y, size):
        self.x, self.y, self.size = x, y, size

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        return self.x[i * self.size : (i + 1) * self.size], self.y[i * self.size : (i + 1) * self.size]


class Passes:
    """Re-iterable: one pass over the batches each time it is iterated."""

    def __init__(self, x, y, size):
        self.x, self.y, self.size = x, y, size

    def __iter__(self):
        for start in range(0, len(self.x), self.size):
            yield self.x[start : start + self.size], self.y[start : start + self.size]


@pytest.mark.parametrize("batched", [False, True], ids=["getitem", "getitems"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_a_map_data_set_trains_exactly_as_the_same_arrays(batched, shuffle):
    arrays = net()
    expected = arrays.fit(X, Y, batch_size=7, shuffle=shuffle, seed=3, **FIT)
    source = net()
    data = Samples(X, Y, batched)
    history = source.fit(data, batch_size=7, shuffle=shuffle, seed=3, **FIT)
    assert bits(source) == bits(arrays)
    assert history["loss"] == expected["loss"] and history["accuracy"] == expected["accuracy"]
    assert data.reads == 2 * len(X) + 1  # each sample once an epoch (and one for its shape)
    assert source.evaluate(Samples(X, Y, batched)) == arrays.evaluate(X, Y)
    assert xpcnn.to_host(source.predict(Samples(X, Y, batched), batch_size=4)).tobytes() == (
        xpcnn.to_host(arrays.predict(X)).tobytes()
    )


def test_a_batch_sequence_and_an_iterable_of_batches_train_as_arrays_without_shuffling():
    arrays = net()
    arrays.fit(X, Y, batch_size=8, shuffle=False, **FIT)
    for data in (Batches(X, Y, 8), Passes(X, Y, 8)):
        model = net()
        model.fit(data, shuffle=False, **FIT)
        assert bits(model) == bits(arrays), type(data).__name__
    shuffled = [net(), net()]
    for model in shuffled:
        model.fit(Batches(X, Y, 8), shuffle=True, seed=5, **FIT)  # the order of the batches, seeded
    assert bits(shuffled[0]) == bits(shuffled[1]) != bits(arrays)


def test_a_generator_gives_steps_per_epoch_batches_and_runs_on_across_epochs():
    def forever():
        while True:
            for start in range(0, 30, 10):
                yield X[start : start + 10], Y[start : start + 10]

    model = net()
    seen = []

    class Count(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, logs["size"]))

    model.fit(forever(), steps_per_epoch=2, callbacks=[Count()], **FIT)
    assert seen == [(0, 10), (1, 10), (0, 10), (1, 10)]
    arrays = net()  # epoch 1 saw batches 0, 1; epoch 2 batches 2, 0: the iterator went on
    order = np.r_[0:20, 20:30, 0:10]
    arrays.fit(X[order], Y[order], batch_size=10, shuffle=False, **{**FIT, "epochs": 1})
    assert bits(model) == bits(arrays)
    short = (pair for pair in [(X[:10], Y[:10])])
    with pytest.raises(ValueError, match=r"ran out after 1 batches of epoch 1; with steps_per_epoch=3"):
        net().fit(short, steps_per_epoch=3, **FIT)


def _write_idx(path, array, code):
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    path.write_bytes(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


def test_an_idx_file_is_read_batch_by_batch_through_a_memory_map(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 6, 6), dtype=np.uint8)
    labels = rng.integers(0, 10, size=40).astype(np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte", images, 0x08)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels, 0x08)
    data = IDXDataset(tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte")
    assert isinstance(data.images, np.memmap) and len(data) == 40
    x, y = load_mnist_idx(tmp_path)

    def model():
        return xpcnn.Sequential([xpcnn.Flatten(), xpcnn.Dense(36, 10, seed=0)])

    a, b = model(), model()
    a.fit(data, loss="softmax_crossentropy", batch_size=16, seed=1, epochs=2, progress=False)
    b.fit(x, y, loss="softmax_crossentropy", batch_size=16, seed=1, epochs=2, progress=False)
    assert bits(a) == bits(b)
    with pytest.raises(ValueError, match="cannot be memory-mapped"):
        xpcnn.datasets.read_idx(_gz(tmp_path / "train-labels-idx1-ubyte"), mmap=True)


def _gz(path):
    import gzip

    target = path.with_name(path.name + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes()))
    return target


def test_validation_split_takes_the_last_samples_as_keras_does():
    split = net()
    history = split.fit(X, Y, batch_size=8, seed=2, validation_split=0.2, **FIT)
    explicit = net()
    expected = explicit.fit(X[:24], Y[:24], batch_size=8, seed=2, validation_data=(X[24:], Y[24:]), **FIT)
    assert bits(split) == bits(explicit) and history.history == expected.history
    source = net()
    assert (
        source.fit(Samples(X, Y), batch_size=8, seed=2, validation_split=0.2, **FIT).history
        == expected.history
    )
    assert bits(source) == bits(explicit)


def test_a_source_resumes_mid_epoch_from_a_backup(tmp_path):
    class Stop(Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 2:
                raise KeyboardInterrupt

    straight = net()
    straight.fit(Samples(X, Y), batch_size=6, seed=0, **FIT)
    path = tmp_path / "b.xpcnn"
    with pytest.raises(KeyboardInterrupt):
        net().fit(Samples(X, Y), batch_size=6, seed=0, callbacks=[BackupAndRestore(path, 2), Stop()], **FIT)
    resumed = net()
    resumed.fit(Samples(X, Y), batch_size=6, seed=0, callbacks=[BackupAndRestore(path, 2)], **FIT)
    assert bits(resumed) == bits(straight)
    with pytest.raises(KeyboardInterrupt):
        net().fit(Passes(X, Y, 6), callbacks=[BackupAndRestore(path, 2), Stop()], **FIT)
    with pytest.raises(ValueError, match="an iterable data source cannot be rewound"):
        net().fit(Passes(X, Y, 6), callbacks=[BackupAndRestore(path, 2)], **FIT)


class Pairs(Samples):
    def __getitem__(self, i):
        return self.x[i]


BAD = {
    "y-with-a-source": (
        lambda: net().fit(Samples(X, Y), Y, **FIT),
        TypeError,
        r"x is a data source, .* Pass y=None",
    ),
    "items-not-pairs": (lambda: net().fit(Pairs(X, Y), **FIT), TypeError, r"items to be \(x, y\) samples"),
    "batch-dtype": (
        lambda: net().fit(Batches(X.astype("float32"), Y, 8), **FIT),
        TypeError,
        r"x has dtype float32 but the model is float64",
    ),
    "batch-lengths": (
        lambda: net().fit(Passes(X, Y[:-1], 8), shuffle=False, **FIT),
        ValueError,
        r"a batch has 6 inputs but 5 targets",
    ),
    "steps-with-arrays": (
        lambda: net().fit(X, Y, steps_per_epoch=2, **FIT),
        TypeError,
        "applies to an iterable",
    ),
    "split-iterable": (
        lambda: net().fit(Passes(X, Y, 8), validation_split=0.5, **FIT),
        ValueError,
        "validation_split takes the last samples",
    ),
    "split-range": (
        lambda: net().fit(X, Y, validation_split=1.0, **FIT),
        ValueError,
        r"validation_split in \[0, 1\)",
    ),
    "split-and-data": (
        lambda: net().fit(X, Y, validation_split=0.2, validation_data=(X, Y), **FIT),
        ValueError,
        "not both",
    ),
    "split-too-small": (
        lambda: net().fit(X[:1], Y[:1], validation_split=0.5, **FIT),
        ValueError,
        "both need",
    ),
    "empty-source": (lambda: net().fit(Samples(X[:0], Y[:0]), **FIT), ValueError, "is empty"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_sources_are_refused_with_what_was_expected(case):
    call, error, match = BAD[case]
    with pytest.raises(error, match=match):
        call()
