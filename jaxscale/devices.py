"""Several devices and hosts: a group's model axis and batch axis sharded with ``jax.sharding``.

A group runs on a 2-D mesh ``('models', 'batch')`` of M x B devices (``group_mesh``):

* **Models.** Models of a stack never communicate, so the leading (model) axis of every
  stacked array is split over ``models``: each device column trains its share of the models
  with no communication. A stack whose size K is not a multiple of M is padded with inert
  copies of its first model (budget 0: frozen from the start) up to a multiple of M; their
  results are dropped.
* **Batch.** The batch every model of the group trains on is split over ``batch`` (data
  parallelism): each device computes its rows' share of the loss and gradients, and XLA adds
  the cross-device sums that make them the whole batch's (GSPMD, from the sharding constraint
  the training program puts on its batch). The parameters and Adam moments are replicated
  over ``batch``. A model trained alone uses this axis alone, so it is no longer held to one
  device of a multi-device host.

``mesh_shape`` chooses M x B. Default: a stack keeps every device on the model axis (B = 1, as
before this axis existed: no gradient communication), and a model alone splits its batch over
the largest number of devices that divides both the device count and the batch. ``batch_shards``
(``RunSettings.batch_shards``, ``--batch-shards``) sets B for both. The sums over a split batch
are taken in another order than on one device, so losses agree to rounding (``tests/test_devices.py``
checks 1e-5 over every step), not bit for bit. The planner costs a split batch's FLOPs at its
share (``DeviceProfile.alone_batch_shards`` / ``stack_batch_shards``, set by
``sweep_plan.with_batch_shards``).

Several hosts: call ``init_distributed()`` (the CLI does when ``JAXSCALE_DISTRIBUTED=1`` or
``--distributed``) before anything touches a device; JAX's own runtime
(``jax.distributed.initialize``) reads the coordinator address, process count and id from the
cluster environment (TPU pods, SLURM, Open MPI) or from ``JAX_COORDINATOR_ADDRESS``;
``init_distributed`` passes it ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` where they are set
(jax 0.10 reads only the address from the environment). Every process runs the same command;
process 0 writes the results. Checkpoints and weights are saved by every process together
(orbax's save is a collective) into the same path, which must be on a filesystem every process
sees (``checkpoint.GroupCheckpoint``); decisions that steer collectives, such as a stop asked by
a signal, are agreed between the processes (``any_process``).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MODEL_AXIS = "models"
BATCH_AXIS = "batch"


def init_distributed() -> None:
    """Join a multi-process JAX job (idempotent; a no-op for a single process)."""
    if getattr(init_distributed, "_done", False):
        return
    # jax.distributed.initialize reads JAX_COORDINATOR_ADDRESS from the environment but not the
    # process count and id (jax 0.10.2: "Number of processes must be defined" outside a cluster
    # it detects), which the README's multi-node example sets: passed on where they are set
    given = {}
    for env, name in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        text = os.environ.get(env, "").strip()
        if text:
            try:
                given[name] = int(text)
            except ValueError:
                raise ValueError(f"{env} must be a whole number, got {text!r}") from None
    jax.distributed.initialize(**given)
    init_distributed._done = True


def maybe_init_distributed(flag: bool = False) -> None:
    if flag or os.environ.get("JAXSCALE_DISTRIBUTED") == "1":
        init_distributed()


def device_count() -> int:
    return jax.device_count()


def is_writer() -> bool:
    """Only process 0 writes result files in a multi-process job (and a checkpoint's own files:
    its arrays are written by orbax's collective save, ``checkpoint.GroupCheckpoint``)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process of a multi-process job reaches the barrier ``name`` (the same
    name, in the same order, on every process); nothing on a single process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def max_over_processes(value: int) -> int:
    """The largest of each process's ``value`` (a small int), on every process: the one
    agreement collective (``any_process``, ``signals.StopRequest``); ``value`` itself on a single
    process, with no collective."""
    if jax.process_count() == 1:
        return int(value)
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.asarray(int(value), dtype=np.int32))))


def any_process(flag: bool) -> bool:
    """``flag`` agreed between the processes: true on every process when it is true on any.

    A decision that steers collectives (stop and checkpoint at this dispatch boundary, on a
    signal that may reach one process only, or reach them at different moments) must be the
    same on every process, or one waits for ever in a collective that the others never enter.
    One process (the usual case) pays nothing: ``flag`` is returned as it is."""
    return max_over_processes(int(bool(flag))) != 0


def mesh_shape(k: int, batch_size: int, n_devices: int, *, stacked: bool,
               batch_shards: int | None = None, processes: int = 1) -> tuple[int, int]:
    """(model shards M, batch shards B) of a group of ``k`` models on ``n_devices`` devices.

    ``batch_shards`` None (default): a stack puts every device on the model axis (M = devices,
    B = 1); a model alone (``stacked`` False, K = 1) splits the batch over the largest divisor of
    the device count that also divides ``batch_size`` (M = 1). A number: B = it, which must
    divide the batch; a stack takes M = devices / B (B must divide the device count), a model
    alone runs on B devices (at most the device count).

    Several ``processes`` (hosts): every process takes part in every program, so a model alone
    splits its batch over every device or over none (B = 1: each process then trains it on its
    own default device, as before the batch axis)."""
    for name, v in (("k", k), ("batch_size", batch_size), ("n_devices", n_devices)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"mesh_shape: `{name}` must be a positive int, got {v!r}")
    if not stacked and k != 1:
        raise ValueError(f"mesh_shape: a group not stacked trains one model, got k={k}")
    if batch_shards is None:
        if stacked:
            return n_devices, 1
        if processes > 1:
            return 1, n_devices if batch_size % n_devices == 0 else 1
        return 1, max(d for d in range(1, n_devices + 1) if n_devices % d == 0 and batch_size % d == 0)
    if not isinstance(batch_shards, (int, np.integer)) or batch_shards < 1:
        raise ValueError(f"batch_shards must be a positive int or None (auto), got {batch_shards!r}")
    if batch_shards > n_devices:
        raise ValueError(f"batch_shards {batch_shards} exceeds the {n_devices} device(s)")
    if batch_size % batch_shards:
        raise ValueError(f"batch_shards {batch_shards} does not divide the batch of {batch_size} sequences")
    if stacked and n_devices % batch_shards:
        raise ValueError(f"batch_shards {batch_shards} does not divide the {n_devices} devices a stack runs on")
    if not stacked and processes > 1 and batch_shards not in (1, n_devices):
        raise ValueError(f"batch_shards {batch_shards}: on {processes} processes a model alone splits its batch "
                         f"over all {n_devices} devices or none (1)")
    return (n_devices // batch_shards if stacked else 1), batch_shards


def host_mesh_shape(k: int, batch_size: int, *, stacked: bool, batch_shards: int | None = None) -> tuple[int, int]:
    """``mesh_shape`` on this job's devices and processes."""
    return mesh_shape(k, batch_size, jax.device_count(), stacked=stacked, batch_shards=batch_shards,
                      processes=jax.process_count())


def group_mesh(model_shards: int, batch_shards: int) -> Mesh | None:
    """The ('models', 'batch') mesh of the first M x B devices; None for one device."""
    if model_shards * batch_shards == 1:
        return None
    devices = np.array(jax.devices()[: model_shards * batch_shards]).reshape(model_shards, batch_shards)
    return Mesh(devices, (MODEL_AXIS, BATCH_AXIS))


def batch_sharding(mesh: Mesh | None) -> NamedSharding | None:
    """How a batch [B, ...] is laid out on ``mesh``: split over its batch axis (None: no mesh, or
    a batch axis of one device)."""
    if mesh is None or mesh.shape[BATCH_AXIS] == 1:
        return None
    return NamedSharding(mesh, P(BATCH_AXIS))


def place(tree, mesh: Mesh | None, *, stacked: bool):
    """Put a group's host arrays on its mesh: a stack's split along the model axis, a model
    alone's replicated; on the default device without a mesh."""
    if mesh is None:
        return jax.device_put(tree)
    return shard_models(tree, mesh) if stacked else replicate(tree, mesh)


def padded_stack_size(k: int, devices: int) -> int:
    return -(-k // devices) * devices


def shard_models(tree, mesh: Mesh):
    """Place a host pytree whose leaves have a leading model axis, split along that axis."""
    sharding = NamedSharding(mesh, P(MODEL_AXIS))
    return jax.tree.map(lambda x: _put(np.asarray(x), sharding), tree)


def replicate(tree, mesh: Mesh):
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda x: _put(np.asarray(x), sharding), tree)


def _put(x: np.ndarray, sharding: NamedSharding):
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    # every process holds the whole host array (it is built deterministically on each); each
    # contributes the shards its devices own
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def to_host(tree):
    """Fetch a (possibly multi-host sharded) pytree to host numpy arrays on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def describe() -> dict:
    devices = jax.devices()
    return {"platform": devices[0].platform, "kind": devices[0].device_kind, "count": len(devices),
            "processes": jax.process_count()}
