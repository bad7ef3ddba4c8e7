"""Layer boundaries.

1. omnir1_jax never imports torch; sam2_bridge never imports jax (checked in fresh processes).
2. The layer order of omnir1_jax (docs/design.md §10, lowest first): a module imports only modules of its own layer or
   below — every ``import`` / ``from`` statement counts, function-local ones too (those are for optional heavy
   dependencies, never for hiding a cycle).
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
    proc = subprocess.run([sys.executable, "-c", _IMPORT_ALL.format(pkg=pkg, forbidden=forbidden)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{pkg} imported {forbidden}:\n{proc.stdout}\n{proc.stderr[-3000:]}"


# Lowest first. A module belongs to the layer of the longest prefix listed here.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("omnir1_jax.rewards", "omnir1_jax.rl", "omnir1_jax.evaluation.metrics", "omnir1_jax.evaluation.protocols",
     "omnir1_jax.data.prompts"),                                              # pure math and prompt texts
    ("omnir1_jax.config", "omnir1_jax.models", "omnir1_jax.testing"),         # configs, the Thinker, tiny fixtures
    ("omnir1_jax.data", "omnir1_jax.lora"),                                   # readers, pipelines, adapters
    ("omnir1_jax.runtime", "omnir1_jax.policy"),                              # policy services, run plumbing
    ("omnir1_jax.tasks", "omnir1_jax.crossomni", "omnir1_jax.rl.rollout"),    # task plug-ins, reward plumbing
    ("omnir1_jax.evaluation",),                                               # the one evaluator
    ("omnir1_jax.learner", "omnir1_jax.stages", "omnir1_jax.seeds",
     "omnir1_jax.overlap"),                                                   # the one learner, its stages, seeds
    ("omnir1_jax.train", "omnir1_jax.train_seeds", "omnir1_jax.sweep", "omnir1_jax.sft", "omnir1_jax.evaluate",
     "omnir1_jax.infer",
     "omnir1_jax.crossomni.train", "omnir1_jax.data.synthetic.__main__", "omnir1_jax.cli",
     "omnir1_jax.compare_turns"),                                             # entry points
)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def layer_of(module: str) -> int | None:
    best, layer = "", None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, layer = p, i
    return layer


def _modules():
    """``(module name, source)`` of every file of the package."""
    base = os.path.join(ROOT, "omnir1_jax")
    for dirpath, _, files in os.walk(base):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                name = rel[: -len(".__init__")] if rel.endswith(".__init__") else rel
                yield name, open(path, encoding="utf-8").read(), f == "__init__.py"


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
    fake = [("omnir1_jax.tasks.fake", "def f():\n    from omnir1_jax.learner import Learner\n", False),
            ("omnir1_jax.learner", "from omnir1_jax.tasks import fake\n", False),
            ("omnir1_jax.tasks", "", True),
            ("omnir1_jax.rl.fake", "from ..policy import complete\n", False),
            ("omnir1_jax.policy", "", False)]
    assert upward_imports(fake) == ["omnir1_jax.rl.fake:1 (layer 0) imports omnir1_jax.policy (layer 3)",
                                    "omnir1_jax.tasks.fake:2 (layer 4) imports omnir1_jax.learner (layer 6)"]
