"""``jaxscale run``: the main job on the built-in default.

For now (issue 3) it trains one small ladder model on the built-in corpus and reports its curve
and losses against the corpus' unigram entropy and ln V; the studies issue turns it into the full
default study (sweep, fits, figures, report).
"""

from __future__ import annotations

import argparse
import math

from jaxscale.commands import _common as c

EXAMPLES = """examples:
  jaxscale run                      # one small model on the built-in corpus, then its report
  jaxscale run --out runs/first --steps 300
"""


def register(sub) -> None:
    p = sub.add_parser("run", help="the main job: train on the built-in corpus and report",
                       description="The main job on the built-in default corpus.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ladder/l3", help="model to train (default ladder/l3)")
    p.add_argument("--steps", type=c.positive_int, default=600, help="optimiser steps (default 600)")
    p.add_argument("--lr", type=c.positive_float, default=3e-3, help="peak learning rate (default 3e-3)")
    p.add_argument("--corpus", default="pystdlib", help="corpus (default: the built-in pystdlib)")
    p.add_argument("--out", default=None, help="output folder (default: a new folder under ./runs/)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def unigram_cross_entropy(train, val) -> float:
    """Validation cross-entropy (nats) under the train split's token frequencies (add-one)."""
    import numpy as np

    counts = np.bincount(train, minlength=int(max(train.max(), val.max())) + 1).astype(float) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-np.mean(logp[val]))


def run(args) -> int:
    from jaxscale.compile_cache import enable_compilation_cache
    from jaxscale.config import create_model_config
    from jaxscale.data.corpus import load_corpus
    from jaxscale.results import append_row
    from jaxscale.runner import ModelSpec, RunSettings, train_group
    from jaxscale.train import Budget, OptimConfig

    enable_compilation_cache()
    cfg = create_model_config(args.model)
    corpus = load_corpus(args.corpus, vocab_size=cfg.vocab_size)
    out = c.out_dir(args, "run")
    spec = ModelSpec(cfg, 0, OptimConfig(lr=args.lr), Budget("steps", args.steps))
    row = train_group([spec], corpus, RunSettings(progress=not args.quiet), mode="alone").rows[0]
    append_row(out / "results.jsonl", row)
    h1 = unigram_cross_entropy(corpus.train, corpus.val)
    print(f"corpus {corpus.name}: {corpus.info()['tokens']} tokens, fingerprint {corpus.fingerprint[:16]}…")
    print(c.summary_line(row))
    print("validation loss along the run:")
    for point in row["curve"]:
        if "val_loss" in point:
            print(f"  step {point['step']:>6}  tokens {point['tokens']:>10,}  val {point['val_loss']:.4f}")
    print(f"reference: ln V = {math.log(cfg.vocab_size):.4f} (uniform), unigram cross-entropy = {h1:.4f} nats")
    print(f"wrote {out / 'results.jsonl'} ({row['wall_seconds']:.1f}s)")
    return 1 if row["diverged"] else 0
