"""One line on stderr and exit status 2, not a traceback, when a command is given a bad file or field.

Entry points decorate their ``main(argv=None) -> int`` with :func:`guarded_main`. The errors it turns into one
line are the ones that describe the user's input, and whose message already names the file / field / value:

- :class:`omnir1_jax.config.ConfigError` (experiment files, ``--set`` overrides, field checks);
- the model package's config and checkpoint errors (a Hugging Face directory that does not fit);
- :class:`omnir1_jax.data.errors.DataFormatError` (dataset files);
- :class:`omnir1_jax.runtime.checkpoint.CheckpointError` (a run directory holding another model's checkpoints);
- :class:`OSError` naming a file (a missing ``--config``, an unwritable ``run.out_dir``).

Anything else is a bug and keeps its traceback. Error types are looked up only in modules already imported
(an error of a module never imported cannot have been raised), so this module imports nothing heavy.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence

__all__ = ["EXIT_BAD_INPUT", "guarded_main", "one_line_error"]

EXIT_BAD_INPUT = 2  # argparse's status for a bad command line; a bad file or field is the same kind of mistake

_TYPED_ERRORS = (
    ("omnir1_jax.config", "ConfigError"),
    ("omnir1_jax.models.qwen2_5_omni.config", "ConfigError"),
    ("omnir1_jax.models.qwen2_5_omni.safetensors_io", "CheckpointError"),
    ("omnir1_jax.data.errors", "DataFormatError"),
    ("omnir1_jax.runtime.checkpoint", "CheckpointError"),
)


def one_line_error(error: BaseException) -> str | None:
    """The one-line message for a user-input error, or None when ``error`` is not one (a bug)."""
    if isinstance(error, OSError) and error.filename is not None:
        where = repr(error.filename) + (f" -> {error.filename2!r}" if error.filename2 is not None else "")
        text = f"{error.strerror or type(error).__name__}: {where}"
    else:
        typed = tuple(getattr(sys.modules[m], name) for m, name in _TYPED_ERRORS if m in sys.modules)
        if not typed or not isinstance(error, typed):
            return None
        text = str(error) or type(error).__name__
    return " ".join(text.split())  # one line, whatever the message held


def _prog(fn: Callable) -> str:
    module = sys.modules.get(fn.__module__)
    spec = getattr(module, "__spec__", None)  # under ``python -m pkg.mod`` the module is __main__, its spec pkg.mod
    name = spec.name if spec is not None else fn.__module__
    return f"python -m {name}"


def guarded_main(fn: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Decorate ``main(argv=None) -> int``: a user-input error (see the module docstring) prints
    ``python -m MODULE: error: MESSAGE`` on one stderr line and returns :data:`EXIT_BAD_INPUT`."""

    @functools.wraps(fn)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        try:
            return fn(argv)
        except Exception as e:
            message = one_line_error(e)
            if message is None:
                raise
            print(f"{_prog(fn)}: error: {message}", file=sys.stderr, flush=True)
            return EXIT_BAD_INPUT

    return wrapper
