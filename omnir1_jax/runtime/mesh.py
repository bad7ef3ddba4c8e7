"""The run's device mesh (docs/design.md §9.1): one function builds it from the config's ``mesh`` section.

The mesh is ``(data, fsdp, tensor)`` over every device of every process, in process-major order, so the
``data`` and ``fsdp`` axes may span processes (docs/design.md §9.2). The Mesh object itself is made by the model
package's :func:`omnir1_jax.models.qwen2_5_omni.make_mesh` (the one place that names the axes);
:func:`global_mesh` only resolves the config to a shape and orders the devices.
"""

from __future__ import annotations

import jax

from omnir1_jax.config import ConfigError, MeshSpec
from omnir1_jax.models.qwen2_5_omni.sharding import make_mesh


def global_mesh(spec: MeshSpec):
    """The run's (data, fsdp, tensor) Mesh over every device of every process (process-major order, so the
    ``data`` and ``fsdp`` axes may span processes), or None for a single device in a single process.
    ``data = -1`` takes every device not used by ``fsdp x tensor``.

    Raises:
      ConfigError: ``data x fsdp x tensor`` is not the number of devices.
    """
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    n = len(devices)
    if n == 1:
        return None
    fsdp, tensor = spec.fsdp, spec.tensor
    data = spec.data if spec.data > 0 else n // (fsdp * tensor)
    if data * fsdp * tensor != n:
        raise ConfigError(
            f"mesh data={data} x fsdp={fsdp} x tensor={tensor} != {n} devices "
            f"({jax.process_count()} processes x {jax.local_device_count()})"
        )
    return make_mesh((data, fsdp, tensor), devices)
