"""``jaxscale families``: list the named model families with their sizes and counts."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("families", help="list named model families and sizes",
                       description="List every named model family: sizes, parameter counts, FLOPs per token.",
                       epilog="examples:\n  jaxscale families\n  jaxscale families --family ladder --json\n",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", default=None, help="only this family")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from jaxscale.config import FAMILIES, family_configs

    names = [args.family] if args.family else list(FAMILIES)
    table = []
    for fam in names:
        for cfg in family_configs(fam):
            n = cfg.param_counts()
            table.append({"name": cfg.name, "d_model": cfg.d_model, "n_heads": cfg.n_heads,
                          "n_layers": cfg.n_layers, "d_ff": cfg.d_ff, "vocab_size": cfg.vocab_size,
                          "context": cfg.max_seq_len, "params": n.total, "non_embedding_params": n.non_embedding,
                          "flops_per_token": cfg.flops_per_token().total})
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    print(f"{'name':<28}{'d':>5}{'H':>4}{'L':>4}{'ff':>6}{'V':>6}{'T':>5}{'params':>12}{'non-emb':>12}{'FLOP/token':>13}")
    for r in table:
        print(f"{r['name']:<28}{r['d_model']:>5}{r['n_heads']:>4}{r['n_layers']:>4}{r['d_ff']:>6}{r['vocab_size']:>6}"
              f"{r['context']:>5}{r['params']:>12,}{r['non_embedding_params']:>12,}{r['flops_per_token']:>13,}")
    return 0
