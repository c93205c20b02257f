"""What a result row records about where it came from: package versions and the device."""

from __future__ import annotations

import platform
import sys
from importlib import metadata


def versions() -> dict[str, str]:
    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for pkg in ("jaxscale", "jax", "jaxlib", "flax", "optax", "numpy", "orbax-checkpoint"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def device_info() -> dict:
    import jax

    devices = jax.devices()
    return {"platform": devices[0].platform, "kind": devices[0].device_kind, "count": len(devices),
            "process_count": jax.process_count(), "host": platform.node()}
