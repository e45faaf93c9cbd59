"""The shape of the package, kept by tests: no import cycle inside ``xpcnn/``, NumPy and CuPy
named only where the architecture allows, an explicit public API, deprecated names that still
work.  The import graph is read from the source (``ast``), function-level imports included:
a lazy import is still a dependency.  The one exception is a module ``__getattr__`` (a
deprecation shim that forwards an old name)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import xpcnn

ROOT = Path(xpcnn.__file__).resolve().parent

#: Modules that may name numpy / cupy: the backend, the CUDA op module, and the host side
#: (initialisation, data, the bundled data sets and the model zoo's data, checkpoints, the
#: finite-difference checker, the reference loops, the neuron of section 1.1 (host weights),
#: the PyTorch state_dict exchange (host arrays; its DLPack dispatch is in the backend), the
#: ONNX exporter (host copies of the parameters), and the tools around the library).
HOST_SIDE = {
    "xpcnn.backend",
    "xpcnn.ops.cuda",
    "xpcnn.init",
    "xpcnn.data",
    "xpcnn.datasets",
    "xpcnn.zoo",
    "xpcnn.checkpoint.format",
    "xpcnn.checkpoint.state",
    "xpcnn.gradcheck",
    "xpcnn.testing",
    "xpcnn.neuron",
    "xpcnn.interop",
    "xpcnn.export.onnx",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str):
    """``(imported name, line)`` for every import in module ``name`` outside ``__getattr__``."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if _is_package(name) else name.rpartition(".")[0]
    shims = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
             for n in ast.walk(f)}  # fmt: skip
    for node in ast.walk(tree):
        if id(node) in shims:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def _edges(name: str) -> set[str]:
    """The xpcnn modules ``name`` imports (a submodule also runs its parent packages, except
    those ``name`` is itself inside, which are already being imported)."""
    targets = set()
    for imported, _ in _imports(name):
        if imported not in MODULES or imported == "xpcnn":
            continue
        parts = imported.split(".")
        for i in range(2, len(parts) + 1):
            parent = ".".join(parts[:i])
            if parent in MODULES and parent != name and not name.startswith(parent + "."):
                targets.add(parent)
    return targets


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_inside_xpcnn():
    graph = {name: _edges(name) for name in MODULES if name != "xpcnn"}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_checkpoint_and_model_depend_one_way():
    assert "xpcnn.checkpoint" in _edges("xpcnn.model")
    for name in MODULES:
        if name.startswith("xpcnn.checkpoint"):
            assert "xpcnn.model" not in _edges(name), name


@pytest.mark.parametrize("name", sorted(MODULES))
def test_numpy_and_cupy_are_named_only_where_allowed(name):
    if name in HOST_SIDE or name.startswith("xpcnn.tools"):
        return
    named = [(imported, line) for imported, line in _imports(name)
             if imported.split(".")[0] in ("numpy", "cupy", "cupyx")]  # fmt: skip
    assert named == [], f"{name} imports {named}: layers, losses, optimizers and the model only see xp"


def test_nothing_in_the_library_imports_the_tools():
    for name in MODULES:
        if not name.startswith("xpcnn.tools") and name not in ("xpcnn.bench", "xpcnn.gpu_check"):
            assert not any(t.startswith("xpcnn.tools") for t in _edges(name)), name


def test_public_api_is_explicit():
    assert len(xpcnn.__all__) == len(set(xpcnn.__all__))
    for name in xpcnn.__all__:
        obj = getattr(xpcnn, name)
        assert not isinstance(obj, type(xpcnn)), f"{name} is a module"
    for name in ("Sequential", "Convolutional", "Dense", "SGD", "Adam", "load", "save", "placement"):
        assert name in xpcnn.__all__
    assert "REGISTRY" not in xpcnn.__all__ and "np" not in xpcnn.__all__
    assert (ROOT / "py.typed").is_file()


@pytest.mark.parametrize(
    "module, name, replacement",
    [("xpcnn.ops", "reference", "xpcnn.testing"), ("xpcnn.checkpoint", "load", "xpcnn.load")],
)
def test_moved_names_still_work_with_a_warning(module, name, replacement):
    with pytest.warns(DeprecationWarning, match=replacement.replace(".", r"\.")):
        obj = getattr(importlib.import_module(module), name)
    expected = importlib.import_module(replacement) if replacement == "xpcnn.testing" else xpcnn.load
    assert obj is expected


def test_the_public_api_is_annotated():
    """Every public function, and every public method a public class defines, states its return
    type (mypy checks them in the lint session; py.typed ships them)."""
    import inspect

    missing = []
    for name in xpcnn.__all__:
        obj = getattr(xpcnn, name)
        if inspect.isfunction(obj):
            functions = [(name, obj)]
        elif inspect.isclass(obj):
            functions = [(f"{name}.{m}", f) for m, f in vars(obj).items() if inspect.isfunction(f)
                         and not m.startswith("_")]  # fmt: skip
        else:
            functions = []
        missing += [
            n for n, f in functions if inspect.signature(f).return_annotation is inspect.Signature.empty
        ]
    assert missing == []
