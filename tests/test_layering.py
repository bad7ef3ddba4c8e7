"""Layer boundaries.

1. omnir1_jax never imports torch; sam2_bridge never imports jax (checked in fresh processes).
2. The bridge's wire side (``sam2_bridge.wire``: protocol, client, budgets, frames, constants) imports neither
   torch (nor the rest of the PyTorch side, nor jax) nor the bridge's server side (``sam2_bridge.server``,
   ``sam2_bridge.serve``), in a fresh process and in its source (every import statement, function-local ones
   too); no chain of the bridge's imports leads from the client to the server side; ``omnir1_jax`` imports the
   bridge only through the wire side (docs/design.md §10).
3. The layer order of omnir1_jax (docs/design.md §10, lowest first): a module imports only modules of its own layer or
   below — every ``import`` / ``from`` statement counts, function-local ones too (when those may be local:
   ``tests/test_imports.py``).
"""

import ast
import os
import subprocess
import sys
import textwrap

import pytest

_IMPORT_ALL = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    pkg = importlib.import_module({pkg!r})
    names = [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
             if not m.name.endswith("__main__")]
    for name in names:
        importlib.import_module(name)
    bad = sorted(m for m in sys.modules if m == {forbidden!r} or m.startswith({forbidden!r} + "."))
    print(len(names), "modules;", "forbidden:", bad[:5])
    sys.exit(1 if bad else 0)
    """
)


@pytest.mark.parametrize("pkg, forbidden", [("omnir1_jax", "torch"), ("sam2_bridge", "jax")])
def test_package_never_imports_the_other_framework(pkg, forbidden):
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL.format(pkg=pkg, forbidden=forbidden)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{pkg} imported {forbidden}:\n{proc.stdout}\n{proc.stderr[-3000:]}"


# Lowest first. A module belongs to the layer of the longest prefix listed here.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "omnir1_jax.rewards",
        "omnir1_jax.rl",
        "omnir1_jax.evaluation.metrics",
        "omnir1_jax.evaluation.protocols",
        "omnir1_jax.data.prompts",
    ),  # pure math and prompt texts
    ("omnir1_jax.config", "omnir1_jax.models", "omnir1_jax.testing"),  # configs, the Thinker, tiny fixtures
    ("omnir1_jax.data", "omnir1_jax.lora"),  # readers, pipelines, adapters
    ("omnir1_jax.runtime", "omnir1_jax.policy"),  # policy services, run plumbing
    ("omnir1_jax.tasks", "omnir1_jax.crossomni", "omnir1_jax.rl.rollout"),  # task plug-ins, reward plumbing
    ("omnir1_jax.evaluation",),  # the one evaluator
    (
        "omnir1_jax.learner",
        "omnir1_jax.stages",
        "omnir1_jax.seeds",
        "omnir1_jax.overlap",
    ),  # the one learner, its stages, seeds
    (
        "omnir1_jax.train",
        "omnir1_jax.train_seeds",
        "omnir1_jax.sweep",
        "omnir1_jax.sft",
        "omnir1_jax.evaluate",
        "omnir1_jax.infer",
        "omnir1_jax.crossomni.train",
        "omnir1_jax.data.synthetic.__main__",
        "omnir1_jax.cli",
        "omnir1_jax.compare_turns",
    ),  # entry points
)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def layer_of(module: str) -> int | None:
    best, layer = "", None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, layer = p, i
    return layer


def _package_sources(package: str):
    """``(module name, source, is_package)`` of every file of ``package`` (a dotted name under the repository)."""
    base = os.path.join(ROOT, *package.split("."))
    for dirpath, _, files in os.walk(base):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                name = rel[: -len(".__init__")] if rel.endswith(".__init__") else rel
                yield name, open(path, encoding="utf-8").read(), f == "__init__.py"


def _modules():
    """``(module name, source, is_package)`` of every file of omnir1_jax."""
    return _package_sources("omnir1_jax")


def _imports(module: str, source: str, is_package: bool):
    tree = ast.parse(source, module)
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield node.lineno, name
            for a in node.names:  # ``from omnir1_jax import policy`` imports the submodule
                yield node.lineno, f"{name}.{a.name}"


def upward_imports(modules) -> list[str]:
    """``module:line imports target`` for every import of a module of a higher layer than the importer's."""
    modules = list(modules)
    names = {m for m, _, _ in modules}
    bad = set()
    for module, source, is_package in modules:
        mine = layer_of(module)
        if mine is None:
            continue
        for line, target in _imports(module, source, is_package):
            if target not in names:  # ``from pkg.mod import name``: the module is the parent
                target = target.rpartition(".")[0]
            if target not in names:
                continue
            theirs = layer_of(target)
            if theirs is not None and theirs > mine:
                bad.add(f"{module}:{line} (layer {mine}) imports {target} (layer {theirs})")
    return sorted(bad)


def test_every_module_has_a_layer():
    missing = [m for m, _, _ in _modules() if m != "omnir1_jax" and layer_of(m) is None]
    assert not missing, f"add these modules to LAYERS: {missing}"


def test_no_module_imports_a_layer_above_it():
    bad = upward_imports(_modules())
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


def test_the_layer_check_catches_an_upward_import():
    fake = [
        ("omnir1_jax.tasks.fake", "def f():\n    from omnir1_jax.learner import Learner\n", False),
        ("omnir1_jax.learner", "from omnir1_jax.tasks import fake\n", False),
        ("omnir1_jax.tasks", "", True),
        ("omnir1_jax.rl.fake", "from ..policy import complete\n", False),
        ("omnir1_jax.policy", "", False),
    ]
    assert upward_imports(fake) == [
        "omnir1_jax.rl.fake:1 (layer 0) imports omnir1_jax.policy (layer 3)",
        "omnir1_jax.tasks.fake:2 (layer 4) imports omnir1_jax.learner (layer 6)",
    ]


# ------------------------------------------------------------------- the bridge: wire side and server side
_IMPORT_WIRE = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    import sam2_bridge.wire, sam2_bridge.wire.client
    names = [m.name for m in pkgutil.walk_packages(sam2_bridge.wire.__path__, "sam2_bridge.wire.")]
    for name in names:
        importlib.import_module(name)
    bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "jax")
                 or m.startswith(("sam2_bridge.server", "sam2_bridge.serve")))
    print(len(names), "modules;", "forbidden:", bad[:5])
    sys.exit(1 if bad or "sam2_bridge.wire.client" not in names else 0)
    """
)


def test_the_wire_side_imports_neither_torch_nor_the_server_side():
    proc = subprocess.run([sys.executable, "-c", _IMPORT_WIRE], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"sam2_bridge.wire:\n{proc.stdout}\n{proc.stderr[-3000:]}"


def bridge_imports(modules, allowed: tuple[str, ...]) -> list[str]:
    """``module:line imports target`` for every import of a ``sam2_bridge`` module outside ``allowed``."""
    bad = set()
    for module, source, is_package in modules:
        for line, target in _imports(module, source, is_package):
            inside = any(target == a or target.startswith(a + ".") for a in allowed)
            if target.startswith("sam2_bridge.") and not inside:
                bad.add(f"{module}:{line} imports {target}")
    return sorted(bad)


def test_the_wire_side_never_imports_the_server_side_in_its_source():
    wire = list(_package_sources("sam2_bridge.wire"))
    assert len(wire) >= 9
    bad = bridge_imports(wire, ("sam2_bridge.wire",))
    assert not bad, "the wire side imports the server side:\n" + "\n".join(bad)


def test_omnir1_jax_reaches_the_bridge_only_through_the_wire_side():
    bad = bridge_imports(_package_sources("omnir1_jax"), ("sam2_bridge.wire",))
    assert not bad, "omnir1_jax imports the bridge's server side:\n" + "\n".join(bad)


def test_the_bridge_import_check_catches_a_server_import():
    fake = [
        ("sam2_bridge.wire.fake", "def f():\n    from sam2_bridge.server.broker import Server\n", False),
        ("sam2_bridge.wire.other", "from sam2_bridge import serve\nfrom sam2_bridge.wire import codec\n", False),
    ]
    assert bridge_imports(fake, ("sam2_bridge.wire",)) == [
        "sam2_bridge.wire.fake:2 imports sam2_bridge.server.broker",
        "sam2_bridge.wire.fake:2 imports sam2_bridge.server.broker.Server",
        "sam2_bridge.wire.other:1 imports sam2_bridge.serve",
    ]


# The PyTorch side's distributions: the wire side names none of them in any import statement.
TORCH_SIDE = ("torch", "torchvision", "sam2", "transformers", "safetensors", "hydra", "iopath")


def foreign_imports(modules, forbidden: tuple[str, ...]) -> list[str]:
    """``module:line imports target`` for every import (function-local ones too) of a top-level package in
    ``forbidden``."""
    bad = set()
    for module, source, is_package in modules:
        for line, target in _imports(module, source, is_package):
            if target.split(".")[0] in forbidden:
                bad.add(f"{module}:{line} imports {target}")
    return sorted(bad)


def test_the_wire_side_never_imports_torch_or_jax_in_its_source():
    bad = foreign_imports(_package_sources("sam2_bridge.wire"), TORCH_SIDE + ("jax", "jaxlib", "flax"))
    assert not bad, "the wire side imports the PyTorch side or jax:\n" + "\n".join(bad)


def test_the_torch_import_check_catches_a_function_local_import():
    fake = [("sam2_bridge.wire.fake", "import numpy\ndef f():\n    import torch.nn.functional\n", False)]
    assert foreign_imports(fake, TORCH_SIDE) == ["sam2_bridge.wire.fake:3 imports torch.nn.functional"]


def reached_from(start: str, modules) -> set[str]:
    """Every ``sam2_bridge`` module that ``start`` reaches through import statements of the bridge's modules
    (function-local ones too), parents of each included: what the module can ever load of the bridge."""
    sources = {m: (s, p) for m, s, p in modules}
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        for name in [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 2)]:
            if name in seen or name not in sources:
                continue
            seen.add(name)
            todo.extend(t for _, t in _imports(name, *sources[name]) if t.startswith("sam2_bridge"))
    return seen


def test_the_client_never_reaches_the_server_side():
    reached = reached_from("sam2_bridge.wire.client", _package_sources("sam2_bridge"))
    assert "sam2_bridge.wire.protocol" in reached  # the walk follows the client's imports
    server = sorted(m for m in reached if m.startswith(("sam2_bridge.server", "sam2_bridge.serve")))
    assert not server, f"the bridge client reaches the server side: {server}"
