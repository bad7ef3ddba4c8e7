"""The run's one mesh (docs/design.md §9.1): ``runtime.mesh.global_mesh`` resolves the config's ``mesh`` section
over every device, in a fresh process with 8 fake CPU devices."""

import os
import subprocess
import sys
import textwrap

import jax

from omnir1_jax.config import MeshSpec
from omnir1_jax.runtime.mesh import global_mesh

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_PROGRAM = textwrap.dedent(
    """
    import jax
    from omnir1_jax.config import ConfigError, MeshSpec
    from omnir1_jax.runtime.mesh import global_mesh

    mesh = global_mesh(MeshSpec(fsdp=2, tensor=2))
    print("axes", mesh.axis_names, dict(mesh.shape))
    print("ids", [d.id for d in mesh.devices.flat])
    print("explicit", dict(global_mesh(MeshSpec(data=4, fsdp=1, tensor=2)).shape))
    try:
        global_mesh(MeshSpec(data=3, fsdp=2, tensor=1))
    except ConfigError as e:
        print("error", e)
    """
)


def test_global_mesh_shapes_and_errors():
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=8 " + os.environ.get("XLA_FLAGS", ""),
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    proc = subprocess.run([sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert lines["axes"] == "('data', 'fsdp', 'tensor') {'data': 2, 'fsdp': 2, 'tensor': 2}"
    assert lines["ids"] == str(list(range(8)))  # process-major, then device id
    assert lines["explicit"] == "{'data': 4, 'fsdp': 1, 'tensor': 2}"
    assert lines["error"] == "mesh data=3 x fsdp=2 x tensor=1 != 8 devices (1 processes x 8)"


def test_one_device_has_no_mesh():
    assert jax.device_count() == 1 and global_mesh(MeshSpec()) is None
