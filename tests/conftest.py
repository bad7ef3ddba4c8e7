"""Suite-wide setup.

pytest imports ``tracemalloc`` lazily when it reports an exception raised in a ``__del__``; by then
tensorflow-datasets' lazy-import shims (etils) may be installed and that late import fails, turning a
harmless finaliser warning into a test error. Importing it up front keeps the report path working.

The suite shares one persistent JAX compilation cache between its tests and, under ``pytest -n 2`` (README's
test command, pytest-xdist), between its worker processes: tests build identical programs through fresh function
objects (every learner builds its own sampler and update), which the in-memory jit caches cannot share, and an
executable is reused here when its HLO, compile options and backend are the same. The cache lives in a fresh
temporary directory made by the controlling process and removed when the run ends. Subprocesses that tests start
do not inherit it (it is not in the environment).

Compilation, not execution, is most of the suite's time (the programs are tiny): the tests compile with LLVM's
optimisation off and XLA:CPU's classic (non-MLIR) fusion emitters, about a third less compile time. These flags
change how fast the machine code is, not what it computes (no fast-math); they apply to this process and the
processes it starts, never to a user's runs. Flags already in ``XLA_FLAGS`` are kept and win.
"""

import os
import shutil
import tempfile
import tracemalloc  # noqa: F401

import pytest

_CACHE_KEY = "omnir1_jax_cache_dir"
_FAST_COMPILE = {
    "--xla_backend_optimization_level": "0",
    "--xla_llvm_disable_expensive_passes": "true",
    "--xla_cpu_use_fusion_emitters": "false",
}


def _with_fast_compile(flags: str) -> str:
    given = {f.split("=", 1)[0] for f in flags.split()}
    extra = [f"{k}={v}" for k, v in _FAST_COMPILE.items() if k not in given]
    return " ".join([*extra, flags]).strip()


os.environ["XLA_FLAGS"] = _with_fast_compile(os.environ.get("XLA_FLAGS", ""))


def _use_cache(path: str) -> None:
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def pytest_configure(config):
    worker = getattr(config, "workerinput", None)
    if worker is not None:  # an xdist worker: the controller made the directory
        # two workers share the machine: one PyTorch thread each (bridge workers that tests start set their own)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        _use_cache(worker[_CACHE_KEY])
        return
    config._omnir1_cache_dir = tempfile.mkdtemp(prefix="omnir1_jax_cache_")
    _use_cache(config._omnir1_cache_dir)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist hook (controller side): every worker gets the controller's cache directory."""
    node.workerinput[_CACHE_KEY] = node.config._omnir1_cache_dir


def pytest_unconfigure(config):
    path = getattr(config, "_omnir1_cache_dir", None)
    if path and os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


# The longest files start first, so that under `-n 2 --dist loadfile` neither worker is left with a long file
# while the other has nothing to do (the order of the others stays the collection order).
_FIRST = (
    "tests/train/test_distributed.py",
    "tests/train/test_learner_outputs.py",
    "tests/tasks/test_mixture_task.py",
    "tests/models/test_qwen2_5_omni_config.py",
    "tests/train/test_trainer_resume.py",
    "tests/tasks/test_interactive.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(_FIRST)}
    root = str(config.rootpath)
    items.sort(key=lambda item: rank.get(os.path.relpath(str(item.path), root), len(_FIRST)))
