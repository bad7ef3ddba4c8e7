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

How a multi-process run trains: one SPMD program over a global mesh
------------------------------------------------------------------------
Every process runs the same program. The (data, fsdp, tensor) mesh
(:func:`omnir1_jax.runtime.mesh.global_mesh`) spans every device of every process, so ``fsdp`` shards the
policy, the frozen reference and the AdamW moments across hosts: they are global arrays (:func:`place`), each
process holding only its shards. Generation, scoring and the update are jit programs over that mesh; XLA inserts
the collectives (the gradient reduction over ``data`` x ``fsdp`` included), nothing is averaged through the hosts.

The batch is split by process: every process walks the same seeded order of records but reads, decodes and
prepares only its own contiguous block of each global batch (``Task.batches(..., share=(i, n))``), and turns
that block into its part of global arrays (:func:`global_inputs` for the prompt, :func:`global_rows` for
completions, masks and advantages; ``jax.make_array_from_process_local_data`` underneath). The sampled tokens
of the whole batch are read back on every process (:func:`fetch`); each process rewards its own prompts with its
own bridge, and the per-process rewards become one global array (:func:`gather_rows`) from which every process
computes the same group advantages. Orbax saves and restores the global arrays (each process writes its own
shards).

Each process should start its own bridge (``bridge.start=True``, an ipc socket in its run directory) or be
given its host's bridge addresses; only process 0 writes metrics, plots, the export and summaries
(:func:`is_primary`), while every process takes part in Orbax checkpointing (Orbax coordinates the commit).

Failing loudly (:mod:`omnir1_jax.runtime.pod`): :func:`initialize` checks that every process runs the same
config and code (a difference: one line naming it, exit status 2) and starts a heartbeat watch; a process that
dies or hangs is named by the others within ``OMNIR1_POD_TIMEOUT_S`` (20 s) and they exit with status 4 instead
of hanging in a collective. Wrap the run in :func:`guard`. Restarting every process resumes from the last
checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax._src import distributed as jax_distributed
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from omnir1_jax.config import ConfigError
from omnir1_jax.runtime import pod

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


def resolve(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    env: Mapping[str, str] | None = None,
) -> DistributedSpec:
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


def initialize(spec: DistributedSpec, fingerprint: Mapping[str, Any] | None = None) -> DistributedSpec:
    """Join the process group described by ``spec`` (no-op for a single process). Call before any JAX
    computation; on CPU backends it selects the ``gloo`` collectives first. Then, in a multi-process run: every
    process's ``fingerprint`` (:func:`omnir1_jax.runtime.pod.fingerprint`) must equal the others' (else
    ConfigError naming the difference), and the lost-process watch starts (:mod:`omnir1_jax.runtime.pod`)."""
    if not spec.multi_process:
        return spec
    timeout_s = pod.timeout_from_env()  # a bad value is a one-line error before joining anything
    platforms = os.environ.get("JAX_PLATFORMS", "") or str(jax.config.jax_platforms or "")
    if "cpu" in platforms.split(",") or platforms == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if spec.auto:
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(
            coordinator_address=spec.coordinator, num_processes=spec.num_processes, process_id=spec.process_id
        )
    state = jax_distributed.global_state
    client = state.client
    pod.name_a_lost_coordinator(jax.process_index(), jax.process_count(), state.coordinator_address)
    if fingerprint is not None:
        pod.check_same_run(client, jax.process_index(), jax.process_count(), dict(fingerprint))
    pod.start_watch(client, jax.process_index(), jax.process_count(), timeout_s)
    return spec


def guard():
    """Context manager around a run's work (:func:`omnir1_jax.runtime.pod.guard`): in a multi-process run, a
    lost peer ends this process with one line instead of a traceback or a hang; a no-op otherwise."""
    return pod.guard()


def is_primary() -> bool:
    """True on process 0 (the only one writing metrics, plots and summaries)."""
    return jax.process_index() == 0


# ----------------------------------------------------------------------------------------- global arrays
def place(tree, shardings):
    """Arrays of ``tree`` (identical on every process: the same seed, the same checkpoint) laid out as global
    arrays with ``shardings`` (a matching tree of ``NamedSharding``); each process materialises only its own
    shards (``make_array_from_callback``), so no process needs more than its share on device."""
    if jax.process_count() == 1:
        return jax.tree.map(jax.device_put, tree, shardings)

    def one(x, sh):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sh, lambda idx: host[idx])

    return jax.tree.map(one, tree, shardings)


def fetch(x):
    """A host (numpy) copy of the whole of ``x`` on every process, also when ``x`` is a global array whose
    shards live on other processes (``process_allgather``)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def process_mesh(mesh):
    """A view of ``mesh`` with axes ``("process", "local")``: the same devices in the same order, one row per
    process, so a sharding over ``"process"`` gives each process one contiguous block of an array and jit
    programs over ``mesh`` accept it. Needs the mesh's devices ordered process by process (what
    :func:`omnir1_jax.runtime.mesh.global_mesh` builds); otherwise :class:`ConfigError`."""
    flat = list(mesh.devices.flat)
    n = jax.process_count()
    owners = [d.process_index for d in flat]
    if owners != sorted(owners) or len({owners.count(p) for p in set(owners)}) != 1 or len(set(owners)) != n:
        raise ConfigError(
            "the mesh's devices are not grouped process by process (process indices in mesh order: "
            f"{owners}); build the mesh with omnir1_jax.runtime.mesh.global_mesh"
        )
    return Mesh(np.asarray(flat).reshape(n, -1), ("process", "local"))


def agree_max(*values: int) -> tuple[int, ...]:
    """The largest of each value over all processes (e.g. a padded width every process must use)."""
    local = np.asarray(values, np.int64)
    if jax.process_count() == 1:
        return tuple(int(v) for v in local)
    every = np.asarray(multihost_utils.process_allgather(local)).reshape(jax.process_count(), -1)
    return tuple(int(v) for v in every.max(axis=0))


def global_rows(local, mesh, axis: int = 0):
    """This process's block of a batch array (numpy, equal shape on every process) as its part of one global
    array whose blocks are laid along ``axis`` in process order (``make_array_from_process_local_data``); the
    array unchanged in a single-process run."""
    if mesh is None or jax.process_count() == 1:
        return local
    local = np.asarray(local)
    spec = [None] * local.ndim
    spec[axis] = "process"
    shape = list(local.shape)
    shape[axis] *= jax.process_count()
    sharding = NamedSharding(process_mesh(mesh), PartitionSpec(*spec))
    return jax.make_array_from_process_local_data(sharding, local, tuple(shape))


def global_inputs(cfg, local, mesh, *, pad_id: int = 0):
    """This process's share of a prompt batch (a prepared ``ModelInputs``) as its part of the global prompt
    batch: padded to the sizes every process agrees on and moved to its place
    (:mod:`omnir1_jax.models.qwen2_5_omni.blocks`), then one global array per leaf (:func:`global_rows`). The
    global batch equals the one a single process would prepare from all rows. Unchanged in a single-process
    run."""
    # lazy: the model package pulls in flax
    from omnir1_jax.models.qwen2_5_omni import blocks

    if mesh is None or jax.process_count() == 1:
        return local
    own = blocks.block_sizes(local)
    every = np.asarray(multihost_utils.process_allgather(np.asarray([own[k] for k in blocks.SIZE_KEYS], np.int64)))
    sizes = blocks.common_sizes(
        [dict(zip(blocks.SIZE_KEYS, (int(v) for v in row))) for row in every.reshape(jax.process_count(), -1)]
    )
    block = blocks.pad_block(
        cfg, local, sizes, block=jax.process_index(), num_blocks=jax.process_count(), pad_id=pad_id
    )
    return jax.tree_util.tree_map_with_path(
        lambda path, x: global_rows(x, mesh, blocks.block_axis(jax.tree_util.keystr(path))), block
    )


def my_prompts(num_prompts: int) -> tuple[int, int]:
    """``(start, stop)`` of the prompts of a global batch that this process scores (contiguous blocks in
    process order: each process rewards its own groups with its own bridge)."""
    n, i = jax.process_count(), jax.process_index()
    if num_prompts % n:
        raise ConfigError(f"data.batch_size={num_prompts} must be a multiple of the {n} processes")
    k = num_prompts // n
    return i * k, (i + 1) * k


def gather_rows(local, mesh=None):
    """Every process's row block of ``local`` (a numpy array, rows first) concatenated in process order, on
    every process. With a mesh whose devices divide the rows, the blocks become one global array
    (``make_array_from_process_local_data``) that a jitted identity replicates; otherwise (or without a
    mesh) ``process_allgather``."""
    local = np.asarray(local)
    n = jax.process_count()
    if n == 1:
        return local
    rows = local.shape[0] * n
    if mesh is not None and rows % mesh.devices.size == 0:
        sharded = NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))
        glob = jax.make_array_from_process_local_data(sharded, local, (rows,) + local.shape[1:])
        out = jax.jit(lambda a: a, out_shardings=NamedSharding(mesh, PartitionSpec()))(glob)
        return np.asarray(out.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(local, tiled=True))
