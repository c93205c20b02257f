"""Several devices and hosts: the model axis of a stack sharded with ``jax.sharding``.

Models of a stack never communicate, so the leading (model) axis of every stacked array is
split over a 1-D mesh ``('models',)`` of all devices (on every host), and the batch, which all
models share, is replicated. ``jax.jit`` then runs each device's share of the models with no
communication at all. A stack whose size K is not a multiple of the device count D is padded
with inert copies of its first model (budget 0: frozen from the start) up to a multiple of D;
their results are dropped.

Several hosts: call ``init_distributed()`` (the CLI does when ``JAXSCALE_DISTRIBUTED=1`` or
``--distributed``) before anything touches a device; JAX's own runtime
(``jax.distributed.initialize``) reads the coordinator address, process count and id from the
cluster environment (TPU pods, SLURM, Open MPI) or from ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. Every process runs the same command; process 0
writes the results.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MODEL_AXIS = "models"


def init_distributed() -> None:
    """Join a multi-process JAX job (idempotent; a no-op for a single process)."""
    if getattr(init_distributed, "_done", False):
        return
    jax.distributed.initialize()
    init_distributed._done = True


def maybe_init_distributed(flag: bool = False) -> None:
    if flag or os.environ.get("JAXSCALE_DISTRIBUTED") == "1":
        init_distributed()


def device_count() -> int:
    return jax.device_count()


def is_writer() -> bool:
    """Only process 0 writes result files and checkpoints in a multi-process job."""
    return jax.process_index() == 0


def model_mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), (MODEL_AXIS,))


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
