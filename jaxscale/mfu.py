"""FLOP counting, device peaks and MFU arithmetic: the conventions every throughput figure uses.

* **Model FLOPs** are counted analytically on each model's *true* (unpadded) size, by
  ``ModelConfig.flops_per_token`` (``FLOP_FORMULA``). Padding, like rematerialisation, is an
  implementation detail kept out of MFU.
* **MFU** = model FLOP/s ÷ (peak FLOP/s per device × devices). The peak is the matmul peak
  *measured* on this machine for a CPU (``measure_matmul_peak``), or the dense (no sparsity)
  figure of ``PEAK_FLOPS`` for a known accelerator, by ``device_kind`` and matmul dtype.

Kept apart from ``bench.py`` (which times programs) so that the arithmetic is small, pure and
tested on its own against hand counts and fake timings.
"""

from __future__ import annotations

from typing import Sequence

FLOP_FORMULA = ("training FLOPs/token = 6*N_non_embedding + 6*d_model*vocab (LM head) + 6*n_layers*T*d_model "
                "(attention QK^T and AV: 12*L*T*d, halved for the causal mask as in MaxText); "
                "2 FLOPs per multiply-add, forward+backward = 3x forward, embedding lookup not counted; "
                "summed over each model's TRUE (unpadded) size; T = trained sequence length")


# Dense peak FLOP/s per device by device_kind (lower-cased substring, first match wins) and
# matmul dtype. bf16 figures are the vendors' dense numbers (NVIDIA's "with sparsity" figure
# halved), as levanter's DEVICE_AVAILABLE_FLOPS lists them. float32 on NVIDIA is the
# non-tensor-core FP32 rate (XLA may use TF32 tensor cores for float32 matmuls at default
# precision, so float32 MFU there is an upper bound); TPUs publish no float32 matmul figure, so
# float32 there falls back to the bf16 peak (said in ``peak_source``).
PEAK_FLOPS: tuple[tuple[str, str, dict], ...] = (
    ("h100 pcie", "NVIDIA H100 PCIe", {"bfloat16": 756e12, "float32": 51e12}),
    ("h200", "NVIDIA H200", {"bfloat16": 989e12, "float32": 67e12}),
    ("h100", "NVIDIA H100 SXM", {"bfloat16": 989e12, "float32": 67e12}),
    ("a100", "NVIDIA A100", {"bfloat16": 312e12, "float32": 19.5e12}),
    ("tpu v4", "TPU v4", {"bfloat16": 275e12}),
    ("tpu v5 lite", "TPU v5e", {"bfloat16": 197e12}),
    ("tpu v5e", "TPU v5e", {"bfloat16": 197e12}),
    ("tpu v5p", "TPU v5p", {"bfloat16": 459e12}),
    ("tpu v5", "TPU v5p", {"bfloat16": 459e12}),
    ("tpu v6 lite", "TPU v6e", {"bfloat16": 918e12}),
    ("tpu v6e", "TPU v6e", {"bfloat16": 918e12}),
)



def flops_per_step(cfg, batch_size: int, seq_len: int) -> int:
    """Model (true-size) training FLOPs of one optimiser step of ``cfg``."""
    return cfg.flops_per_token(seq_len=seq_len).total * batch_size * seq_len


def mfu(model_flops_per_s: float, peak_flops: float, devices: int = 1) -> float:
    """Model FLOP utilisation as a fraction: model FLOP/s ÷ (peak per device × devices)."""
    if peak_flops <= 0 or devices <= 0:
        raise ValueError(f"peak_flops and devices must be positive, got {peak_flops}, {devices}")
    return model_flops_per_s / (peak_flops * devices)


def throughput(cfgs: Sequence, step_seconds: float, batch_size: int, seq_len: int, peak_flops: float,
               devices: int = 1) -> dict:
    """tokens/s, model FLOP/s and MFU of ``cfgs`` that together take ``step_seconds`` for one
    optimiser step of each (a stack's step, or the sum of the models' steps one after another)."""
    if step_seconds <= 0:
        raise ValueError(f"step_seconds must be positive, got {step_seconds}")
    tokens = len(cfgs) * batch_size * seq_len
    flops = sum(flops_per_step(c, batch_size, seq_len) for c in cfgs)
    return {"tokens_per_s": tokens / step_seconds, "model_flops_per_s": flops / step_seconds,
            "mfu": mfu(flops / step_seconds, peak_flops, devices)}


def table_peak(device_kind: str, dtype: str = "bfloat16") -> tuple[float, str] | None:
    """(peak FLOP/s, source) from ``PEAK_FLOPS`` for an accelerator's ``device_kind``, or None."""
    kind = device_kind.lower()
    for pattern, name, peaks in PEAK_FLOPS:
        if pattern in kind:
            if dtype in peaks:
                return peaks[dtype], f"table: {name} dense {dtype} peak ({peaks[dtype]:.3g} FLOP/s)"
            return peaks["bfloat16"], (f"table: {name} dense bfloat16 peak ({peaks['bfloat16']:.3g} FLOP/s; "
                                       f"no {dtype} figure published)")
    return None


def measure_matmul_peak(dtype: str = "float32", n: int = 1024, repeats: int = 7) -> float:
    """The CPU's practical matmul peak (the planner's measurement at a larger size, more repeats)."""
    from jaxscale.device_profile import measure_matmul_peak as measure

    return measure(dtype, n=n, repeats=repeats)


def device_peak(dtype: str = "float32", *, measure: bool = True) -> dict:
    """The peak used for MFU: ``{"peak_flops", "peak_source", "device", "devices"}``."""
    import jax

    devs = jax.devices()
    dev = devs[0]
    info = {"platform": dev.platform, "kind": dev.device_kind, "count": len(devs)}
    found = table_peak(dev.device_kind, dtype) if dev.platform != "cpu" else None
    if found is not None:
        peak, source = found
    elif measure or dev.platform == "cpu":
        peak = measure_matmul_peak(dtype)
        source = (f"measured: best of 7 jitted 1024x1024 {dtype} matmul chains on this {dev.platform} "
                  f"({peak / 1e9:.1f} GFLOP/s per device, all its cores)")
    else:
        raise ValueError(f"no peak known for device kind {dev.device_kind!r}")
    return {"peak_flops": peak, "peak_source": source, "device": info, "devices": len(devs)}

