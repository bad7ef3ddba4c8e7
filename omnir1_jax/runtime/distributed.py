"""Multi-process JAX (``jax.distributed``) for the training entry point: who am I, and how to launch.

Every process of a multi-host run executes the same command, ``python -m omnir1_jax.train --config ...``,
and :func:`initialize` (called by ``train.main`` before JAX touches a device) joins it to the others. The
process group is taken, in this order, from

1. the command-line flags ``--coordinator HOST:PORT --num-processes N --process-id I``;
2. the environment ``OMNIR1_COORDINATOR``, ``OMNIR1_NUM_PROCESSES``, ``OMNIR1_PROCESS_ID`` (the older
   ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` are read too);
3. auto-detection by JAX itself on a Cloud TPU pod slice, under SLURM (``srun``, one task per host) and
   Open MPI (``mpirun``): ``jax.distributed.initialize()`` without arguments;
4. nothing found: a single process (no ``jax.distributed``).

On CPU backends the cross-process collectives need an implementation: :func:`initialize` selects ``gloo``
(``jax_cpu_collectives_implementation``), which is how the tests run 2 processes x 4 fake CPU devices on one
machine.

Launching
---------

**TPU pod slice** (e.g. v5p-64, 8 hosts): run the same command on every worker; the coordinator and the
process ids come from the TPU metadata::

    gcloud compute tpus tpu-vm ssh $TPU --zone $ZONE --worker=all --command \\
      "cd omnir1-jax && .venv/bin/python -m omnir1_jax.train --config experiments/omni_r1_7b_vos.py"

**GPU hosts** (e.g. 2 hosts x 8 H100): one process per host sees its 8 local GPUs; process 0's host is the
coordinator (any free TCP port reachable from the other hosts)::

    # host 0                                                   # host 1
    OMNIR1_COORDINATOR=host0:7777 OMNIR1_NUM_PROCESSES=2 \\     OMNIR1_COORDINATOR=host0:7777 OMNIR1_NUM_PROCESSES=2 \\
    OMNIR1_PROCESS_ID=0 python -m omnir1_jax.train \\          OMNIR1_PROCESS_ID=1 python -m omnir1_jax.train \\
      --config experiments/omni_r1_7b_vos.py                     --config experiments/omni_r1_7b_vos.py

or, under SLURM, ``srun --nodes=2 --ntasks-per-node=1 python -m omnir1_jax.train --config ...`` (auto-detected).

**One machine, fake devices** (what the tests do)::

    XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu \\
      OMNIR1_COORDINATOR=127.0.0.1:7777 OMNIR1_NUM_PROCESSES=2 OMNIR1_PROCESS_ID=$I python -m omnir1_jax.train ...

How a multi-process run trains (data parallel across processes)
------------------------------------------------------------------
Each process holds a full copy of the policy, the frozen reference and the optimiser state, laid out on its
own slice of the config's mesh (:func:`local_mesh`: the rows of the ``data`` axis whose devices it owns, so
``fsdp`` / ``tensor`` sharding stays inside a host). It reads every ``process_count``-th record
(:func:`shard_records`), i.e. its share ``data.batch_size / process_count`` of the global batch, samples its
groups with its own PRNG stream, queries its own bridge and computes the gradient of its rows. The gradients
are averaged across processes (:func:`allreduce_mean`, weighted so that the result is the gradient of the
concatenated global batch) and every process applies the same AdamW step, so the replicas stay equal. The
averaging goes through the hosts (``process_allgather``): simple and exact, but a 7B run spends a host
round-trip of the gradients per step; on a TPU pod prefer one process per host with large local meshes.
Checkpoints are written as global arrays on the whole mesh (:func:`to_global`), so Orbax writes each
replicated leaf once.

Each process should start its own bridge (``bridge.start=True``, an ipc socket in its run directory) or be
given its host's bridge addresses; only process 0 writes metrics, plots and summaries (:func:`is_primary`),
while every process takes part in Orbax checkpointing (Orbax coordinates the commit).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping

from omnir1_jax.config import ConfigError

ENV = ("OMNIR1_COORDINATOR", "OMNIR1_NUM_PROCESSES", "OMNIR1_PROCESS_ID")
LEGACY_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


@dataclasses.dataclass(frozen=True)
class DistributedSpec:
    """How to join a process group.

    Attributes:
      coordinator: ``host:port`` of process 0's coordination service (None = auto-detect or single process).
      num_processes: processes in the run (1 = no ``jax.distributed``).
      process_id: this process, ``0 .. num_processes - 1``.
      auto: call ``jax.distributed.initialize()`` without arguments (TPU pod slice, SLURM, Open MPI).
    """

    coordinator: str | None = None
    num_processes: int = 1
    process_id: int = 0
    auto: bool = False

    def __post_init__(self):
        if self.num_processes < 1:
            raise ConfigError(f"num_processes must be >= 1, got {self.num_processes}")
        if not 0 <= self.process_id < self.num_processes:
            raise ConfigError(f"process_id must be in [0, {self.num_processes}), got {self.process_id}")
        if self.num_processes > 1 and not self.coordinator:
            raise ConfigError(f"num_processes={self.num_processes} needs a coordinator address (host:port)")
        if self.coordinator and (":" not in self.coordinator or not self.coordinator.rsplit(":", 1)[1].isdigit()):
            raise ConfigError(f"coordinator must be host:port, got {self.coordinator!r}")

    @property
    def multi_process(self) -> bool:
        return self.auto or self.num_processes > 1


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer") from None


def _auto_detectable(env: Mapping[str, str]) -> bool:
    slurm = int(env.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in env
    mpi = int(env.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1
    # TPU pod slices: several worker hostnames in the TPU metadata environment.
    tpu = len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1
    return slurm or mpi or tpu


def resolve(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
            env: Mapping[str, str] | None = None) -> DistributedSpec:
    """The :class:`DistributedSpec` from flags (first), the environment, or auto-detection (see module doc)."""
    env = os.environ if env is None else env
    values = [coordinator, num_processes, process_id]
    for names in (ENV, LEGACY_ENV):
        for i, name in enumerate(names):
            if values[i] is None and env.get(name):
                values[i] = env[name] if i == 0 else _int(name, env[name])
    coord, n, pid = values
    if n is None and coord is None and pid is None:
        return DistributedSpec(auto=_auto_detectable(env))
    return DistributedSpec(coordinator=coord, num_processes=1 if n is None else n, process_id=pid or 0)


def initialize(spec: DistributedSpec) -> DistributedSpec:
    """Join the process group described by ``spec`` (no-op for a single process). Call before any JAX
    computation; on CPU backends it selects the ``gloo`` collectives first."""
    if not spec.multi_process:
        return spec
    import jax

    platforms = os.environ.get("JAX_PLATFORMS", "") or str(jax.config.jax_platforms or "")
    if "cpu" in platforms.split(",") or platforms == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if spec.auto:
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(coordinator_address=spec.coordinator, num_processes=spec.num_processes,
                                   process_id=spec.process_id)
    return spec


def is_primary() -> bool:
    """True on process 0 (the only one writing metrics, plots and summaries)."""
    import jax

    return jax.process_index() == 0


# ------------------------------------------------------------------------------------------------ meshes
def local_mesh(mesh):
    """This process's slice of ``mesh`` (a (data, fsdp, tensor) Mesh over every device of the run): the
    ``data`` rows whose devices all belong to this process. Raises if a row spans processes (make
    ``fsdp * tensor`` divide the devices per process)."""
    import jax
    import numpy as np
    from jax.sharding import Mesh

    devices = np.asarray(mesh.devices)
    mine = np.vectorize(lambda d: d.process_index == jax.process_index())(devices)
    rows = [i for i in range(devices.shape[0]) if mine[i].all()]
    if not rows or any(mine[i].any() and not mine[i].all() for i in range(devices.shape[0])):
        raise ConfigError(f"mesh {dict(mesh.shape)}: every data row must lie in one process "
                          f"({jax.local_device_count()} devices per process); make fsdp x tensor divide it")
    return Mesh(devices[rows], mesh.axis_names, axis_types=mesh.axis_types)


def run_meshes(mesh_spec):
    """``(global_mesh, local_mesh)`` of a run. One process: ``build_mesh``'s mesh twice (None on one device).
    Several: the global mesh over every device (process-major) and this process's slice of it."""
    import jax
    import numpy as np
    from jax.sharding import AxisType, Mesh

    from omnir1_jax.runtime.setup import build_mesh

    if jax.process_count() == 1:
        mesh = build_mesh(mesh_spec)
        return mesh, mesh
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    n = len(devices)
    fsdp, tensor = mesh_spec.fsdp, mesh_spec.tensor
    data = mesh_spec.data if mesh_spec.data > 0 else n // (fsdp * tensor)
    if data * fsdp * tensor != n:
        raise ConfigError(f"mesh data={data} x fsdp={fsdp} x tensor={tensor} != {n} devices")
    mesh = Mesh(np.asarray(devices).reshape(data, fsdp, tensor), ("data", "fsdp", "tensor"),
                axis_types=(AxisType.Auto,) * 3)
    return mesh, local_mesh(mesh)


def shard_records(records, batch_size: int):
    """This process's share of the training records (every ``process_count``-th) and its per-process batch
    size; the global ``batch_size`` must be a multiple of the process count."""
    import jax

    n, i = jax.process_count(), jax.process_index()
    if n == 1:
        return list(records), batch_size
    if batch_size % n:
        raise ConfigError(f"data.batch_size={batch_size} must be a multiple of the {n} processes")
    return list(records)[i::n], batch_size // n


# ----------------------------------------------------------------------------------------- collectives
def allreduce_mean(tree, weight: float):
    """The ``weight``-weighted mean over processes of a pytree of process-local arrays (each leaf keeps its
    sharding); the identity in a single-process run."""
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return tree
    w = np.asarray(multihost_utils.process_allgather(np.float64(weight)), np.float64)
    leaves, treedef = jax.tree.flatten(tree)
    gathered = multihost_utils.process_allgather(
        [np.asarray(jax.device_get(x)) for x in leaves])
    out = []
    for x, g in zip(leaves, gathered):
        g = np.asarray(g, np.float64)
        mean = np.tensordot(w, g, axes=(0, 0)) / w.sum()
        value = mean.astype(np.asarray(x).dtype)
        out.append(jax.device_put(value, x.sharding) if isinstance(x, jax.Array) else value)
    return jax.tree.unflatten(treedef, out)


def to_global(tree, global_mesh, local):
    """Process-local arrays (laid out on ``local``, this process's slice of ``global_mesh``; leaves elsewhere
    are first replicated on it) as global arrays on ``global_mesh`` with the same PartitionSpecs, for Orbax."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P

    def one(x):
        sh = getattr(x, "sharding", None)
        if not (isinstance(sh, NamedSharding) and sh.mesh.devices.shape == local.devices.shape
                and (sh.mesh.devices == local.devices).all()):
            x = jax.device_put(x, NamedSharding(local, P()))
        spec = x.sharding.spec
        return jax.make_array_from_single_device_arrays(
            x.shape, NamedSharding(global_mesh, spec), [s.data for s in x.addressable_shards])

    return jax.tree.map(one, tree)


def from_global(tree, local):
    """Inverse of :func:`to_global`: this process's copy of each global leaf, laid out on ``local``."""
    import jax
    from jax.sharding import NamedSharding

    def one(x):
        return jax.make_array_from_single_device_arrays(
            x.shape, NamedSharding(local, x.sharding.spec), [s.data for s in x.addressable_shards])

    return jax.tree.map(one, tree)
