"""Imports that read.

1. No single-letter module aliases (``import ... as P`` meant the policy in one file, ``PartitionSpec`` or the
   protocol in others): modules are imported by their names or a descriptive alias. The one exception is the
   universal ``torch.nn.functional as F``.
2. A function-local import of the project's own modules says why it is not at the top, in a comment on the line
   or just above its block (a cycle, or keeping a heavy dependency lazy), unless the block itself imports a
   heavy dependency (``import torch`` inside a function explains itself).

AST only: nothing is imported here.
"""

from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OWN = ("omnir1_jax", "sam2_bridge")
# Where the rules hold (the tests import lazily on purpose: per-test skips, subprocess workers).
CODE = ("omnir1_jax", "sam2_bridge", "benchmarks", "scripts", "experiments")
ALLOWED_SHORT = {("torch.nn.functional", "F")}
HEAVY = {
    "jax",
    "flax",
    "optax",
    "orbax",
    "grain",
    "torch",
    "torchvision",
    "transformers",
    "sam2",
    "tensorflow",
    "tensorflow_datasets",
    "matplotlib",
    "PIL",
    "av",
    "soundfile",
    "pyarrow",
    "zmq",
    "scipy",
    "tokenizers",
}


def _sources(roots=CODE + ("tests",)):
    for root in roots:
        for dirpath, _, files in os.walk(os.path.join(ROOT, root)):
            if "__pycache__" in dirpath:
                continue
            for f in sorted(files):
                if f.endswith(".py"):
                    path = os.path.join(dirpath, f)
                    with open(path, encoding="utf-8") as fh:
                        yield os.path.relpath(path, ROOT), fh.read()


def short_aliases(sources) -> list[str]:
    """``path:line module as X`` for every single-letter alias outside :data:`ALLOWED_SHORT`."""
    bad = []
    for path, source in sources:
        for node in ast.walk(ast.parse(source, path)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    name = a.name if isinstance(node, ast.Import) else f"{node.module}.{a.name}"
                    if a.asname and len(a.asname) == 1 and (name, a.asname) not in ALLOWED_SHORT:
                        bad.append(f"{path}:{node.lineno} {name} as {a.asname}")
    return bad


def _top(node) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name.split(".")[0] for a in node.names]
    return ["." if node.level else (node.module or "").split(".")[0]]


def unexplained_local_imports(sources) -> list[str]:
    """``path:line`` of every function-local import of an own module without a reason (see the module doc)."""
    bad = []
    for path, source in sources:
        lines = source.splitlines()

        def visit(node, in_function: bool):
            body_lists = [v for v in ast.iter_fields(node) if isinstance(v[1], list)]
            for _, body in body_lists:
                block: list[ast.stmt] = []  # the run of import statements the current one belongs to
                for child in body:
                    if not isinstance(child, ast.AST):
                        continue
                    if isinstance(child, (ast.Import, ast.ImportFrom)):
                        block.append(child)
                        own = any(t in OWN or t == "." for t in _top(child))
                        if in_function and own and not _explained(lines, block, child):
                            bad.append(f"{path}:{child.lineno} {lines[child.lineno - 1].strip()}")
                    else:
                        block = []
                    visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

        visit(ast.parse(source, path), False)
    return bad


def _explained(lines: list[str], block: list[ast.stmt], node: ast.stmt) -> bool:
    if "#" in lines[node.lineno - 1]:
        return True
    if any(t in HEAVY for b in block for t in _top(b)):
        return True
    above = block[0].lineno - 2
    while above >= 0 and not lines[above].strip():
        above -= 1
    return above >= 0 and lines[above].strip().startswith("#")


def test_no_single_letter_module_aliases():
    bad = short_aliases(_sources())
    assert not bad, "import under a descriptive alias or the plain name:\n" + "\n".join(bad)


def test_function_local_imports_of_the_project_say_why():
    bad = unexplained_local_imports(_sources(CODE))
    assert not bad, (
        "move these imports to the top, or give the reason in a comment above the block "
        "(a cycle, a heavy dependency kept lazy):\n" + "\n".join(bad)
    )


def test_the_checks_catch_what_they_should():
    src = (
        "import numpy as N\nimport torch.nn.functional as F\n"
        "def f():\n    from omnir1_jax import policy\n"
        "def g():\n    # lazy: flax\n    from omnir1_jax import policy\n\n    from omnir1_jax import learner\n"
        "def h():\n    import torch\n    from omnir1_jax import policy\n"
    )
    assert short_aliases([("fake.py", src)]) == ["fake.py:1 numpy as N"]
    assert unexplained_local_imports([("fake.py", src)]) == ["fake.py:4 from omnir1_jax import policy"]
