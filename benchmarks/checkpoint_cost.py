"""Checkpoint time and size for a stack the size of the default study's ladder sweep.

    python benchmarks/checkpoint_cost.py [--family ladder --sizes l1 ... l8 --copies 4]

Builds the stacked training state (parameters padded to the envelope, AdamW moments, counters,
keys, loss history) of ``copies`` models per size (the study trains 2 learning rates × 2 seeds),
saves it with ``jaxscale.checkpoint.GroupCheckpoint`` several times and loads it back, and
prints the median save and load times and the snapshot size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import jax
import numpy as np


def main() -> None:
    from jaxscale.checkpoint import GroupCheckpoint
    from jaxscale.commands._common import positive_int
    from jaxscale.config import create_model_config
    from jaxscale.model import init_params
    from jaxscale.stack import envelope, pad_params, stack_trees
    from jaxscale.train import OptimConfig, init_states

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", default="ladder")
    p.add_argument("--sizes", nargs="+", default=[f"l{i}" for i in range(1, 9)])
    p.add_argument("--copies", type=positive_int, default=4, help="models per size (learning rates × seeds)")
    p.add_argument("--repeats", type=positive_int, default=5)
    args = p.parse_args()
    cfgs = [create_model_config(f"{args.family}/{s}") for s in args.sizes for _ in range(args.copies)]
    env = envelope(cfgs)
    params = stack_trees([pad_params(init_params(c, i), env) for i, c in enumerate(cfgs)])
    state = init_states(params, list(range(len(cfgs))), OptimConfig(), stacked=True)
    # trained moments are not zeros: fill every float array with noise so the size is realistic
    # (orbax compresses, and fresh AdamW moments would compress to almost nothing)
    rng = np.random.default_rng(0)
    state = jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(x.dtype)
                         if np.issubdtype(np.asarray(x).dtype, np.floating) else np.asarray(x), state)
    arrays = {"state": state, "total_steps": np.zeros(len(cfgs), np.int32),
              "train_losses": np.zeros((3000, len(cfgs)))}
    saves, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = GroupCheckpoint(tmp)
        for i in range(args.repeats):
            t0 = time.perf_counter()
            ckpt.save(arrays, {"step": i + 1, "elapsed": 0.0, "val_points": [], "compile_seconds": 0.0})
            saves.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ckpt.load(arrays)
            loads.append(time.perf_counter() - t0)
        size = ckpt.size_bytes()
    print(f"stack of {len(cfgs)} models padded to {env.d_model}x{env.n_layers} "
          f"({env.param_counts().total:,} parameters each): snapshot {size / 1e6:.1f} MB, "
          f"save {statistics.median(saves):.2f}s, load {statistics.median(loads):.2f}s (median of {args.repeats})")


if __name__ == "__main__":
    main()
