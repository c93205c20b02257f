"""The ``jaxscale`` command: a thin dispatcher over the subcommand modules in ``jaxscale.commands``.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit status. Heavy imports
(jax, matplotlib) happen inside those callables, so ``jaxscale --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order --help lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "train", "sweep", "fit", "allocate", "emergence", "bench", "run", "families",
)

EPILOG = """examples:
  jaxscale run                                   # the default study end to end (CPU: <= 10 min)
  jaxscale train --model ladder/l1 --steps 300   # one model on the built-in corpus
  jaxscale families                              # list every named model family and size
  jaxscale <command> --help                      # every command has examples
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxscale",
        description="Scaling laws measured on your own hardware (JAX/Flax).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from jaxscale import __version__
    parser.add_argument("--version", action="version", version=f"jaxscale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"jaxscale.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"jaxscale.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from jaxscale.host import tune_malloc

    tune_malloc()  # before jax starts its CPU threads; see jaxscale/host.py
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except (ValueError, FileNotFoundError) as err:
        print(f"jaxscale {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the system refused a read or write (a full disk, permissions): no traceback
        print(f"jaxscale {args.command}: error: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:  # jax.errors.JaxRuntimeError, without importing jax here
        if "RESOURCE_EXHAUSTED" not in str(err):
            raise
        print(f"jaxscale {args.command}: error: the device ran out of memory ({_first_line(err)}); train with a "
              f"smaller --batch-size or --seq-len, or smaller models (rows already written are kept)",
              file=sys.stderr)
        return 1


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def run() -> None:
    """The ``jaxscale`` console command (and ``python -m jaxscale.cli``): ``main()``, then a quick
    exit.

    Why: once a sweep had written everything, the interpreter's own teardown (finalising jax's,
    XLA's and orbax's modules and objects; the exit handlers themselves take ~0.01 s) took
    0.5-0.7 s on the 2-core CPU, about 5% of a warm ``notebook-emergence`` run, with nothing left
    to do. So after ``main`` returns, the exit handlers run, the output is flushed, and the
    process ends with ``os._exit``. A process with other threads alive, or one that joined a
    multi-process job (whose shutdown the other processes wait for), exits the usual way.

    Before anything, the process restarts itself once with jemalloc (or tcmalloc) preloaded
    where one is installed (``host.preload_allocator``: XLA's CPU compiles run faster on it)."""
    from jaxscale.host import preload_allocator_or_exit

    preload_allocator_or_exit("jaxscale")
    _exit_quickly(main())


def _exit_quickly(status: int) -> None:
    import atexit
    import os
    import threading

    devices = sys.modules.get("jaxscale.devices")
    joined = devices is not None and getattr(devices.init_distributed, "_done", False)
    if threading.active_count() > 1 or joined:
        sys.exit(status)
    atexit._run_exitfuncs()  # jax's, orbax's and logging's handlers, as a normal exit runs them
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be written
            pass
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    run()
