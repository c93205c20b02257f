"""The planner: every model planned once, modes honoured, auto never worse than its alternatives
under its own cost model, one stack for overhead-bound models on an accelerator."""

import pytest

from jaxscale.planner import DeviceProfile, plan
from jaxscale.presets import make_preset

CPU = DeviceProfile("cpu", flop_rate=25e9, overhead_s=2e-4, per_model_s=5e-5, compile_s=6.0, param_s=3.5e-9)
GPU = DeviceProfile("gpu", flop_rate=3e13, overhead_s=5e-4, per_model_s=2e-6, compile_s=15.0, param_s=2e-11)


def _steps(preset):
    return [s.budget.steps(s.cfg, preset.data.batch_size, preset.data.seq_len) for s in preset.specs]


@pytest.mark.parametrize("name", ["notebook-scaling", "notebook-emergence"])
@pytest.mark.parametrize("profile", [CPU, GPU], ids=["cpu", "gpu"])
def test_auto_is_never_worse_than_stack_or_sequential(name, profile):
    preset = make_preset(name)
    steps, tps = _steps(preset), preset.data.tokens_per_step
    cost = {m: sum(g.estimated_s for g in plan(preset.specs, steps, tps, profile, mode=m))
            for m in ("auto", "stack", "sequential")}
    assert cost["auto"] <= min(cost["stack"], cost["sequential"]) + 1e-9
    for mode in cost:
        groups = plan(preset.specs, steps, tps, profile, mode=mode)
        assert sorted(i for g in groups for i in g.indices) == list(range(len(preset.specs)))
    assert len(plan(preset.specs, steps, tps, profile, mode="sequential")) == 5
    assert len(plan(preset.specs, steps, tps, profile, mode="stack")) == 1


@pytest.mark.parametrize("name", ["notebook-scaling", "notebook-emergence"])
def test_accelerator_stacks_overhead_bound_models(name):
    preset = make_preset(name)
    groups = plan(preset.specs, _steps(preset), preset.data.tokens_per_step, GPU, mode="auto")
    assert len(groups) == 1 and groups[0].mode == "stack"


def test_incompatible_models_go_to_separate_groups():
    preset = make_preset("notebook-scaling")
    other = make_preset("notebook-emergence")
    specs = preset.specs + other.specs
    groups = plan(specs, [40] * 10, 96, GPU, mode="stack")
    assert len(groups) == 2
    with pytest.raises(ValueError, match="mode must be one of"):
        plan(specs, [40] * 10, 96, GPU, mode="fast")
