"""Every experiment config of ``experiments/`` as the ``--config`` value that selects it: ``path`` for a file
without variants, ``path:variant`` for each variant of a file that lists ``VARIANTS``."""

import glob
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENTS = os.path.join(ROOT, "experiments")


def variants(path: str) -> tuple[str, ...]:
    """The ``VARIANTS`` a file lists (empty for a file of one config)."""
    spec = importlib.util.spec_from_file_location(f"_variants_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(getattr(module, "VARIANTS", ()))


def specs(pattern: str = "*.py") -> list[str]:
    """The ``--config`` values of the files matching ``pattern``, sorted by file then in variant order."""
    out = []
    for path in sorted(glob.glob(os.path.join(EXPERIMENTS, pattern))):
        out += [f"{path}:{v}" for v in variants(path)] or [path]
    return out


def spec_id(spec: str) -> str:
    """``table4.py:rk`` (a test id without the directory)."""
    return os.path.basename(spec)
