"""The core install: ``pip install .`` without extras must give working ``omnir1_jax.rewards``, ``omnir1_jax.rl``
and the evaluation measures. ``setup.cfg``'s ``install_requires`` is exactly the third-party distributions those
modules import at module level (following their imports inside the package, parents included); the extras cover
every import of the rest (``[train]`` for the JAX side, ``[bridge]`` for the PyTorch side, ``[all]`` both).

AST only: nothing is imported or installed here.
"""

from __future__ import annotations

import ast
import configparser
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What users import without the training stack; every module under these packages counts.
CORE_ROOTS = ("omnir1_jax.rewards", "omnir1_jax.rl", "omnir1_jax.evaluation.metrics", "omnir1_jax.evaluation.protocols")
# Modules of those packages that are training plumbing and need [train] (imported on their own, never by the
# package): the GRPO update and the sharded optimiser (flax, optax) and the rollout glue (data masks, the bridge
# protocol).
TRAIN_ONLY = ("omnir1_jax.rl.update", "omnir1_jax.rl.zero", "omnir1_jax.rl.rollout")
# Import name -> distribution name, where they differ.
DISTRIBUTION = {
    "PIL": "pillow",
    "yaml": "pyyaml",
    "zmq": "pyzmq",
    "absl": "absl-py",
    "ml_dtypes": "ml-dtypes",
    "orbax": "orbax-checkpoint",
    "tensorflow_datasets": "tensorflow-datasets",
    "array_record": "array-record",
    "hydra": "hydra-core",
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
}
OWN = ("omnir1_jax", "sam2_bridge")


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    return cfg


def _names(text: str) -> set[str]:
    """Distribution names of a requirements field, lower-cased, without version specifiers."""
    return {
        re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    }


def _path(module: str) -> str | None:
    base = os.path.join(ROOT, *module.split("."))
    for p in (os.path.join(base, "__init__.py"), base + ".py"):
        if os.path.isfile(p):
            return p
    return None


def _module_level_imports(module: str, *, everywhere: bool = False) -> list[str]:
    """Absolute names imported by ``module``: at module level (top-level statements, also inside ``if`` / ``try`` /
    ``with`` / class bodies; not inside functions), or with ``everywhere`` anywhere in the file."""
    path = _path(module)
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    out: list[str] = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not everywhere:
                continue
            if isinstance(child, ast.Import):
                out.extend(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - child.level + 1] + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                out.append(base)
                out.extend(f"{base}.{a.name}" for a in child.names)  # ``from pkg import submodule``
            visit(child)

    visit(tree)
    return out


def _package_modules(prefix: str) -> list[str]:
    top = os.path.join(ROOT, *prefix.split("."))
    if not os.path.isdir(top):
        return [prefix]
    out = []
    for dirpath, _, files in os.walk(top):
        for f in sorted(files):
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                out.append(rel[: -len(".__init__")] if rel.endswith(".__init__") else rel)
    return out


def core_third_party() -> tuple[set[str], set[str]]:
    """(the package modules an import of the core loads, the top-level third-party names they import)."""
    todo = [m for root in CORE_ROOTS for m in _package_modules(root) if m not in TRAIN_ONLY]
    seen: set[str] = set()
    third: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a module runs its parents
        for name in _module_level_imports(module):
            top = name.split(".")[0]
            if top in OWN:
                # the longest prefix that is a module of the package (``from pkg.mod import name``: pkg.mod)
                while name and _path(name) is None:
                    name = name.rpartition(".")[0]
                if name:
                    todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third.add(top)
    return seen, third


def test_install_requires_is_exactly_what_the_core_imports():
    modules, third = core_third_party()
    assert {
        "omnir1_jax",
        "omnir1_jax.rewards.total",
        "omnir1_jax.rl.loss",
        "omnir1_jax.evaluation",
        "omnir1_jax.evaluation.metrics.davis_jax",
        "omnir1_jax.evaluation.protocols.refavs",
    } <= modules
    # nothing of the training stack is reached: no loop, data pipeline, policy, model or config module
    heavy = [
        m
        for m in modules
        if m.startswith(
            (
                "omnir1_jax.data",
                "omnir1_jax.policy",
                "omnir1_jax.models",
                "omnir1_jax.config",
                "omnir1_jax.evaluation.loop",
                "omnir1_jax.runtime",
            )
        )
    ]
    assert not heavy, heavy
    needed = {DISTRIBUTION.get(t, t).lower() for t in third}
    assert needed == {"jax", "jaxtyping", "numpy", "scipy"}
    assert _names(_setup_cfg()["options"]["install_requires"]) == needed


def test_the_extras_cover_every_import_and_torch_stays_out_of_the_core():
    cfg = _setup_cfg()
    core = _names(cfg["options"]["install_requires"])
    extras = {k: _names(cfg.get("options.extras_require", k)) for k in ("train", "bridge", "all")}
    assert "torch" not in core | extras["train"] and "torch" in extras["bridge"]
    assert extras["all"] == extras["train"] | extras["bridge"]
    for package, extra in (("omnir1_jax", "train"), ("sam2_bridge", "bridge")):
        missing = {}
        for module in _package_modules(package):
            for name in _module_level_imports(module, everywhere=True):
                top = name.split(".")[0]
                dist = DISTRIBUTION.get(top, top).lower()
                if top in OWN or top in sys.stdlib_module_names or top == "__future__":
                    continue
                # omnir1_jax's parity helpers (models.qwen2_5_omni.testing) import torch inside functions, for tests
                if dist not in core | extras[extra] and not (package == "omnir1_jax" and dist == "torch"):
                    missing.setdefault(dist, module)
        assert not missing, f"{package}: imports not in install_requires or [{extra}]: {missing}"


def test_the_pinned_requirements_pin_every_core_and_extra_distribution():
    """requirements.txt (scripts/install.sh's one install) pins every direct dependency."""
    cfg = _setup_cfg()
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        pinned = _names(f.read())
    declared = _names(cfg["options"]["install_requires"]) | _names(cfg.get("options.extras_require", "all"))
    # brought in (and pinned) by the pinned packages that need them
    transitive = {"absl-py", "ml-dtypes", "pyarrow"}
    assert declared - transitive <= pinned, declared - transitive - pinned
