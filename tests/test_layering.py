"""Layer boundaries: omnir1_jax never imports torch; sam2_bridge never imports jax (checked in fresh processes)."""

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
