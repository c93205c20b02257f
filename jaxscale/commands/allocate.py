"""``jaxscale allocate``: split a compute budget C = 6·N·D between parameters and tokens."""

from __future__ import annotations

import argparse

from jaxscale.commands._common import positive_float

EXAMPLES = """examples:
  jaxscale allocate --compute 1e21                      # rule of thumb, 20 tokens per parameter
  jaxscale allocate --compute 1e19 1e21 1e23 --tokens-per-param 25
  jaxscale fit chinchilla runs.csv --json > fit.json
  jaxscale allocate --compute 1e21 1e23 --fit fit.json  # from a fitted Approach-3 law
  jaxscale allocate --compute 5.76e23 --fit fit.json --json

Rule of thumb: D = r*N with C = 6*N*D gives N = (C/(6r))^(1/2), D = r*N.
Fitted law: N_opt = G*(C/6)^a, D_opt = C/(6*N_opt), from E, A, B, alpha, beta in FILE
(the output of `jaxscale fit chinchilla --json`, its "approach3" entry).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "allocate", help="compute-optimal parameters and tokens for a FLOP budget",
        description="Compute-optimal allocation of training FLOPs C = 6*N*D.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    # positive_float: a budget <= 0, nan or inf was refused only inside the allocation, as
    # "budgets: ...", which named no option
    p.add_argument("--compute", type=positive_float, nargs="+", required=True, metavar="C",
                   help="one or more training budgets in FLOPs")
    # one or the other: --tokens-per-param beside --fit was ignored without a word (the law
    # fixes D/N); argparse refuses the pair, naming both, before anything is read
    how = p.add_mutually_exclusive_group()
    how.add_argument("--fit", metavar="FILE",
                     help="JSON from `jaxscale fit chinchilla --json` (uses its approach3 law)")
    how.add_argument("--tokens-per-param", type=positive_float, default=None, metavar="R",
                     help="rule-of-thumb tokens per parameter (default: 20; not with --fit)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


DEFAULT_TOKENS_PER_PARAM = 20.0


def run(args) -> int:
    from jaxscale.fit.allocation import allocation_table, load_law
    if args.fit and args.tokens_per_param is not None:  # parse_args refuses it; a namespace built by hand may not
        raise ValueError("--tokens-per-param: not allowed with --fit (the fitted law fixes tokens per parameter)")
    if args.tokens_per_param is None:
        args.tokens_per_param = DEFAULT_TOKENS_PER_PARAM
    repeated = sorted({c for c in args.compute if args.compute.count(c) > 1})
    if repeated:  # the table would show the same row twice
        raise ValueError(f"--compute: budget(s) {', '.join(f'{c:g}' for c in repeated)} given more than once")
    law = load_law(args.fit) if args.fit else None
    rows = allocation_table(args.compute, tokens_per_param=args.tokens_per_param, law=law)
    if law is None:
        method = {"method": "rule_of_thumb", "tokens_per_param": args.tokens_per_param}
    else:
        method = {"method": "fitted_law", "fit": str(args.fit), "law": law.to_json()}
    if args.json:
        # strict JSON, as `jaxscale fit --json` writes it: a non-finite number (a law's G beyond
        # float range) is null; allocation_table refuses non-finite allocations themselves
        from jaxscale.results import strict_json
        print(strict_json({"allocation": rows, **method}))
        return 0
    if law is None:
        print(f"rule of thumb: {args.tokens_per_param:g} tokens per parameter, C = 6*N*D")
    else:
        print(f"fitted law from {args.fit}: E={law.E:.5g} A={law.A:.5g} B={law.B:.5g} "
              f"alpha={law.alpha:.5g} beta={law.beta:.5g}  (a={law.a:.4f}, b={law.b:.4f}, "
              f"G={law.G:.5g})")
    head = f"{'compute (FLOPs)':>16} {'params N':>12} {'tokens D':>12} {'D/N':>8}"
    if law is not None:
        head += f" {'loss':>8}"
    print(head)
    for r in rows:
        line = (f"{r['compute']:>16.4g} {r['params']:>12.4g} {r['tokens']:>12.4g} "
                f"{r['tokens_per_param']:>8.2f}")
        if law is not None:
            line += f" {r['loss']:>8.4f}"
        print(line)
    return 0
