"""How far a model trained in a stack drifts from the same model alone, next to how far it drifts
from itself when its learning rate moves by one float32 ulp.

    python benchmarks/stack_drift.py [--size small --partner micro --steps 600]

On the notebook's emergence workload (one 4-token sequence per step, AdamW 1e-3, no early stop),
trains ``size`` three ways: alone; alone with the learning rate raised to the next float32; and
in a stack with ``partner``. Prints the training loss of each at a few steps with the relative
differences from the first. A stack and a model alone round differently (a vmapped matmul sums
in another order), and training amplifies any last-bit difference; when the stack's spread is of
the size of the one-ulp spread, it is rounding, not a stacking error.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np


def main() -> None:
    from jaxscale.presets import make_preset
    from jaxscale.runner import train_group
    from jaxscale.train import Budget

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small", help="the model followed (a notebook-emergence size)")
    p.add_argument("--partner", default="micro", help="the other model of the stack")
    p.add_argument("--steps", type=int, default=600)
    args = p.parse_args()
    if args.steps < 2:
        raise SystemExit("--steps must be at least 2")
    preset = make_preset("notebook-emergence")
    by_size = {s.cfg.name.split("/")[-1]: s for s in preset.specs}
    for name in (args.size, args.partner):
        if name not in by_size:
            raise SystemExit(f"unknown size {name!r}; sizes are {list(by_size)}")
    settings = dataclasses.replace(preset.settings, progress=False, early_stop=None)
    budget = Budget("steps", args.steps)
    spec = dataclasses.replace(by_size[args.size], budget=budget)
    lr_up = float(np.nextafter(np.float32(spec.optim.lr), np.float32(1)))
    spec_up = dataclasses.replace(spec, optim=dataclasses.replace(spec.optim, lr=lr_up))
    partner = dataclasses.replace(by_size[args.partner], budget=budget)

    alone = train_group([spec], preset.data, settings, mode="alone").rows[0]
    nudged = train_group([spec_up], preset.data, settings, mode="alone").rows[0]
    stacked = train_group([partner, spec], preset.data, settings, mode="stack").rows[1]
    print(f"notebook-emergence/{args.size}: alone, alone with lr {spec.optim.lr:g} -> {lr_up!r}, "
          f"in a stack with {args.partner}")
    marks = sorted({s for s in (1, 10, 20, 50, 100, 200, 300, args.steps) if s <= args.steps})
    for s in marks:
        a, b, c = (r["curve"][s - 1]["train_loss"] for r in (alone, nudged, stacked))
        print(f"  step {s:>5}  alone {a:.6f}  lr+1ulp {b:.6f} (rel {abs(b - a) / abs(a):.1e})  "
              f"stack {c:.6f} (rel {abs(c - a) / abs(a):.1e})")


if __name__ == "__main__":
    main()
