"""Argument checks shared by every module: one helper per rule.

Each helper returns the cleaned value (a Python ``int``, ``float`` or pair of ints) or raises an
error that names the argument, the rule and the value received, in the Keras style:
``Expected a strictly positive integer. Received depth=0.``, prefixed with ``where`` (a layer or
function name) when one is given.  A number of the wrong type raises ``TypeError`` for real
numbers and pairs, ``ValueError`` for integers (``batch_size=2.5`` breaks the integer rule);
a value outside the rule raises ``ValueError``.  ``bool`` is never accepted as a number.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from .backend import FLOAT_DTYPES, dtype_name

__all__ = [
    "float_dtype",
    "integer",
    "non_negative",
    "non_negative_int",
    "pair",
    "positive",
    "positive_int",
    "real",
    "unit_interval",
]

_REAL_RULES = {
    "finite": "a finite value",
    "positive": "a strictly positive, finite value",
    "non_negative": "a non-negative, finite value",
    "nonzero": "a non-zero, finite value",
}


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def _is_int(value) -> bool:
    return type(value) is int or (isinstance(value, Integral) and not isinstance(value, bool))


def integer(value, argument: str, minimum: int = 1, where: str = "") -> int:
    """``value`` as an ``int`` when it is an integer (Python or NumPy) ``>= minimum``."""
    if not _is_int(value) or value < minimum:
        rule = {1: "a strictly positive integer", 0: "a non-negative integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"{_prefix(where)}Expected {rule}. Received {argument}={value!r}.")
    return int(value)


def positive_int(value, argument: str, where: str = "") -> int:
    """An integer ``>= 1``."""
    return integer(value, argument, 1, where)


def non_negative_int(value, argument: str, where: str = "") -> int:
    """An integer ``>= 0``."""
    return integer(value, argument, 0, where)


def pair(value, argument: str, minimum: int, where: str = "") -> tuple[int, int]:
    """An int or a pair of ints (a tuple or a list), each ``>= minimum``, as a tuple."""
    pair_ = (value, value) if _is_int(value) else value
    try:
        if isinstance(pair_, str):
            raise TypeError
        a, b = pair_
    except (TypeError, ValueError):
        raise TypeError(
            f"{_prefix(where)}Expected an int or a pair of ints. Received {argument}={value!r}."
        ) from None
    if not all(_is_int(v) and v >= minimum for v in (a, b)):
        rule = "strictly positive" if minimum == 1 else "non-negative" if minimum == 0 else f">= {minimum}"
        raise ValueError(
            f"{_prefix(where)}Expected {rule} integers for {argument}. Received {argument}={value!r}."
        )
    return int(a), int(b)


def _number(value, argument: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{_prefix(where)}Expected a real number. Received {argument}={value!r}.")
    return float(value)


def real(value, argument: str, rule: str = "finite", where: str = "") -> float:
    """``value`` as a ``float``; ``rule`` is ``"finite"``, ``"positive"`` (``> 0``),
    ``"non_negative"`` (``>= 0``) or ``"nonzero"``; every rule also requires a finite value."""
    number = _number(value, argument, where)
    ok = math.isfinite(number) and (
        rule == "finite"
        or (rule == "positive" and number > 0)
        or (rule == "non_negative" and number >= 0)
        or (rule == "nonzero" and number != 0)
    )
    if not ok:
        raise ValueError(f"{_prefix(where)}Expected {_REAL_RULES[rule]}. Received {argument}={value!r}.")
    return number


def positive(value, argument: str, where: str = "") -> float:
    """A finite real number ``> 0``."""
    return real(value, argument, "positive", where)


def non_negative(value, argument: str, where: str = "") -> float:
    """A finite real number ``>= 0``."""
    return real(value, argument, "non_negative", where)


def unit_interval(value, argument: str, *, closed: bool = False, where: str = "") -> float:
    """A real number in ``[0, 1)`` (``[0, 1]`` with ``closed``)."""
    number = _number(value, argument, where)
    if not (0 <= number and (number <= 1 if closed else number < 1)):  # NaN fails too
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{_prefix(where)}Expected a value in {interval}. Received {argument}={value!r}.")
    return number


def float_dtype(dtype, argument: str = "dtype", where: str = "") -> str:
    """``"float32"`` or ``"float64"`` from a name or any namespace's dtype object."""
    name = dtype_name(dtype)
    if name not in FLOAT_DTYPES:
        raise ValueError(
            f"{_prefix(where)}Expected {argument} float32 or float64. Received {argument}={dtype!r}."
        )
    return name
