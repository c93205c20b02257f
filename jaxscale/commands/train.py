"""``jaxscale train``: train one model and write its result row."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from jaxscale.commands import _common as c

EXAMPLES = """examples:
  jaxscale train --model ladder/l1 --steps 300
  jaxscale train --model notebook-scaling/nano --corpus shakespeare --tokens-per-param 20
  jaxscale train --d-model 64 --n-heads 4 --n-layers 2 --d-ff 256 --context 64 --steps 500 --lr 3e-3
  jaxscale train --model l3 --corpus my_texts/ --out runs/l3 --json

Writes OUT/results.jsonl (one row, fields in the README) and prints a summary.
"""


def register(sub) -> None:
    p = sub.add_parser("train", help="train one model and write its result row",
                       description="Train one GPT on a corpus and write its result row (JSON Lines).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="named size, family/size or bare size (default ladder/l1)")
    for name in ("d-model", "n-heads", "n-layers", "d-ff", "context", "vocab-size"):
        p.add_argument(f"--{name}", type=c.positive_int, default=None,
                       help=f"explicit size: {name} (overrides the named model's)")
    p.add_argument("--dropout", type=c.fraction, default=None, help="dropout rate in [0, 1)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None, help="matmul dtype")
    p.add_argument("--seed", type=c.seed, default=0, help="model seed: initialisation and dropout (default 0)")
    p.add_argument("--lr", type=c.positive_float, default=3e-3, help="peak learning rate (default 3e-3)")
    c.add_budget_args(p)
    c.add_run_args(p)
    p.add_argument("--json", action="store_true", help="print the row (without its curve) as JSON")
    p.set_defaults(func=run)


def model_config_from_args(args):
    from jaxscale.config import ModelConfig, create_model_config

    explicit = {"d_model": args.d_model, "n_heads": args.n_heads, "n_layers": args.n_layers,
                "d_ff": args.d_ff, "max_seq_len": args.context, "vocab_size": args.vocab_size,
                "dropout": args.dropout, "dtype": args.dtype}
    explicit = {k: v for k, v in explicit.items() if v is not None}
    if args.model is None and {"d_model", "n_heads", "n_layers"} <= set(explicit):
        d = explicit["d_model"]
        base = dict(vocab_size=256, max_seq_len=64, d_ff=4 * d, name=f"custom-d{d}-l{explicit['n_layers']}")
        return ModelConfig(**{**base, **explicit})
    return create_model_config(args.model or "ladder/l1", **explicit)


def run(args) -> int:
    from jaxscale.compile_cache import enable_compilation_cache
    from jaxscale.data.corpus import load_corpus
    from jaxscale.results import append_row
    from jaxscale.runner import ModelSpec, train_group

    enable_compilation_cache()
    cfg = model_config_from_args(args)
    budget = c.budgets_from_args(args, default_steps=300)[0]
    corpus = load_corpus(args.corpus, vocab_size=cfg.vocab_size)
    # checked before --out is made (``train_group`` checks the same, but only after it was:
    # a refused run left an empty folder behind)
    if args.seq_len is not None and args.seq_len > cfg.max_seq_len:
        raise ValueError(f"--seq-len: {args.seq_len} tokens is longer than the model's context "
                         f"({cfg.max_seq_len} tokens); give --seq-len {cfg.max_seq_len} or less, or leave "
                         f"it out (default: the context)")
    seq_len = args.seq_len or cfg.max_seq_len
    corpus.check_fits(seq_len, cfg.vocab_size)
    c.check_token_budgets([budget], [cfg], args.batch_size, seq_len)
    spec = ModelSpec(cfg, args.seed, c.optim_config(args, args.lr), budget)
    c.check_batch_shards(args, args.batch_size)
    if args.out is not None:
        # train rows accumulate in a folder of their own, but not among a sweep's or a study's,
        # whose fits and resumes would take this row for one of theirs (before training: nothing
        # is spent on a run that cannot be written)
        # (an experiment script's folder is marked by its made_by.json; a folder that merely holds
        # sweeps in subfolders, like runs/, is not theirs: they never read its results.jsonl)
        given = Path(args.out)
        from jaxscale.sweep_folder import MADE_BY

        owned = [n for n in ("sweep.json", "ladder/sweep.json", "study.json", MADE_BY) if (given / n).exists()]
        if owned:
            raise ValueError(f"--out {args.out!r} holds a sweep, study or experiment ({', '.join(owned)}): its fits and "
                             f"resumes would take this row for one of theirs. Give another --out folder")
    out = c.out_dir(args, "train")
    row = train_group([spec], corpus, c.run_settings(args), mode="alone").rows[0]
    append_row(out / "results.jsonl", row)
    if args.json:
        print(json.dumps({k: v for k, v in row.items() if k != "curve"}, indent=2))
    else:
        print(c.summary_line(row))
        print(f"ln V = {math.log(cfg.vocab_size):.4f} nats (uniform guessing); "
              f"compile {row['stack']['compile_seconds']:.1f}s, wall {row['wall_seconds']:.1f}s")
        print(f"wrote {out / 'results.jsonl'}")
    return 1 if row["diverged"] else 0
