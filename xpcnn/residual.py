"""Residual blocks (He et al., 2016): ``y = block(x) + shortcut(x)``."""

from __future__ import annotations

from .backend import DeviceLike
from .layers.base import Layer, register
from .model import Sequential

__all__ = ["Residual"]


def _chain(value, argument: str) -> Sequential:
    if isinstance(value, Sequential):
        return value
    if isinstance(value, Layer):
        return Sequential([value])
    if isinstance(value, (list, tuple)):
        return Sequential(list(value))
    raise TypeError(
        f"Residual: expected {argument} to be a layer, a list of layers or a Sequential. Received "
        f"{type(value).__name__}."
    )


@register
class Residual(Layer):
    """``Y = B(X) + S(X)``: a block ``B`` (layers, or a ``Sequential``) and a shortcut ``S``,
    the identity by default, or e.g. ``Convolutional(1, 32, stride=2)`` where the block changes
    the shape.  Both must give the same output shape.

    Backward: with ``g = dE/dY`` and ``J_B``, ``J_S`` the Jacobians of the two paths,
    ``dE/dX = J_B^T g + J_S^T g`` (33): each path's backward runs on the same ``g`` and the two
    input gradients are summed (for the identity ``J_S^T g = g``); each path stores its own
    parameter gradients (eq. 4).

    Args:
        block: a layer, a list of layers or a ``Sequential``.
        shortcut: ``None`` (the identity) or the same kinds.
    """

    child_slots = ("block", "shortcut")

    def __init__(self, block, shortcut=None):
        self.block = _chain(block, "block")
        self.shortcut = None if shortcut is None else _chain(shortcut, "shortcut")
        self._checked: dict = {}  # input shape -> output shape, once the paths were checked for it
        super().__init__(dtype=self.block.dtype)
        if self.shortcut is not None and self.shortcut.dtype != self.block.dtype:
            self.shortcut.to(dtype=self.block.dtype)
        self.placement = self.block.placement
        if self.shortcut is not None:
            self.shortcut.to(self.placement)
        self.built = self.block.built and (self.shortcut is None or self.shortcut.built)
        self._set_index(None)
        first = self.block._first_input_shape()
        if first is not None:
            self.build(first)

    def __repr__(self) -> str:
        return f"Residual(block={self.block!r}, shortcut={self.shortcut!r})"

    # ------------------------------------------------------------ the container
    def _paths(self) -> list:
        return [self.block] if self.shortcut is None else [self.block, self.shortcut]

    def children(self) -> dict:
        out = {"block": list(self.block.layers)}
        if self.shortcut is not None:
            out["shortcut"] = list(self.shortcut.layers)
        return out

    @classmethod
    def from_children(cls, config: dict, children: dict) -> Residual:
        if config:  # save writes {}: anything else is not a file xpcnn wrote
            raise ValueError(f"Residual has no configuration, found {sorted(config)}")
        shortcut = children.get("shortcut")
        return cls(Sequential(children["block"]), None if shortcut is None else Sequential(shortcut))

    def _set_index(self, index) -> None:
        self.index = index
        for slot, path in zip(self.child_slots, self._paths(), strict=False):
            for j, layer in enumerate(path.layers):
                layer._set_index(f"{index}.{slot}.{j}" if index is not None else f"{slot}.{j}")

    def leaves(self) -> list:
        return [leaf for path in self._paths() for leaf in path.leaves()]

    def _prefixed(self, arrays) -> dict:
        """``arrays(path)`` of each path, named ``"block.<i>.<name>"`` / ``"shortcut.<i>.<name>"``."""
        return {f"{slot}.{k}": v for slot, path in zip(self.child_slots, self._paths(), strict=False)
                for k, v in arrays(path).items()}  # fmt: skip

    def parameters(self) -> dict:
        return self._prefixed(lambda path: path.parameters())

    def state(self) -> dict:
        return self._prefixed(lambda path: path.state())

    @property
    def param_names(self) -> tuple:  # type: ignore[override]
        return tuple(self.parameters())

    @property
    def grads(self) -> dict:
        return self._prefixed(lambda path: path.grads)

    @grads.setter
    def grads(self, value) -> None:  # Layer.__init__ and Layer.to reset it: nothing is stored here
        pass

    def set_parameters(self, values: dict) -> None:
        raise TypeError("Residual.set_parameters: set the parameters of the layers of block or shortcut.")

    set_state = set_tensors = set_parameters

    def train(self, mode: bool = True) -> Residual:
        self.training = bool(mode)
        for path in self._paths():
            path.train(mode)
        return self

    def to(self, device: DeviceLike = None, dtype: str | None = None) -> Residual:
        for path in self._paths():
            path.to(device, dtype)
        self.placement, self.dtype = self.block.placement, self.block.dtype
        self._input = None
        return self

    # ------------------------------------------------------------------ shapes
    def _first_input_shape(self):
        return self.block._first_input_shape()

    def build(self, input_shape: tuple) -> Residual:
        self.check_input_shape(input_shape)
        return self

    def check_input_shape(self, input_shape: tuple) -> None:
        shape = tuple(int(s) for s in input_shape)
        if shape in self._checked:  # (a nest of blocks would otherwise be walked 2^depth times)
            return
        out = self.block.output_shape(shape)  # builds the block's layers, names a mismatch
        other = shape if self.shortcut is None else self.shortcut.output_shape(shape)
        if tuple(out) != tuple(other):
            what = "the input (identity shortcut)" if self.shortcut is None else "the shortcut's output"
            raise ValueError(
                f"{self.label}: the block's output {tuple(out)} and {what} {tuple(other)} differ; they are "
                "added. Give a shortcut that maps the input to the block's output shape, e.g. a 1x1 "
                "Convolutional with the block's stride and depth."
            )
        self.built = True
        self._checked[shape] = tuple(out)

    def output_shape(self, input_shape: tuple) -> tuple:
        shape = tuple(int(s) for s in input_shape)
        if shape not in self._checked:
            self.check_input_shape(shape)
        return self._checked[shape]

    def _check_shape(self, x) -> None:
        super()._check_shape(x)
        self.check_input_shape(tuple(x.shape[1:]))

    # ------------------------------------------------------------------ passes
    def _forward(self, xp, x):
        self._input = x
        y = self.block._chain_forward(x)
        return y + (x if self.shortcut is None else self.shortcut._chain_forward(x))

    def _backward(self, xp, output_gradient, input_gradient):
        dx = self.block._chain_backward(output_gradient, input_gradient)  # eq. 33, the block's part
        if self.shortcut is None:
            other = output_gradient
        else:
            other = self.shortcut._chain_backward(output_gradient, input_gradient)
        if not input_gradient:
            return None
        return dx + other  # eq. 33
