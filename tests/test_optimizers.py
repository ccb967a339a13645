"""scripts.training.optimizers: Adam with one clip on the norm of all gradients of a step, applied
in step_schedules."""

from __future__ import annotations

import numpy
import pytest
import torch
from thinc.api import Adam, Linear, PyTorchWrapper, chain

from scripts.training.optimizers import GlobalNormAdam, create_global_norm_adam

SETTINGS = dict(
    L2=0.01, beta1=0.9, beta2=0.999, eps=1e-8, L2_is_weight_decay=True, use_averages=False
)


def thinc_model(seed: int = 0):
    model = chain(Linear(nO=4, nI=3), Linear(nO=2, nI=4))
    model.initialize()
    rng = numpy.random.default_rng(seed)
    for node in model.walk():
        for name in node.param_names:
            node.set_param(name, rng.normal(size=node.get_param(name).shape).astype("f"))
    return model


def torch_model(seed: int = 0):
    torch.manual_seed(seed)
    return PyTorchWrapper(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)))


def params(model) -> list[numpy.ndarray]:
    if model.shims:
        return [p.detach().numpy().copy() for p in model.shims[0]._model.parameters()]
    return [node.get_param(name).copy() for node in model.walk() for name in node.param_names]


def train(model, optimizer, *, steps: int, grad_scale=lambda step: 1.0) -> None:
    """steps updates on fixed data, the loss gradient of step s multiplied by grad_scale(s)."""
    rng = numpy.random.default_rng(1)
    X = rng.normal(size=(8, 3)).astype("f")
    Y = rng.normal(size=(8, 2)).astype("f")
    for step in range(steps):
        out, backprop = model.begin_update(X)
        backprop((out - Y) * grad_scale(step))
        model.finish_update(optimizer)
        optimizer.step_schedules()


@pytest.mark.parametrize("make_model", [thinc_model, torch_model], ids=["thinc", "torch"])
def test_below_the_clip_it_is_thincs_adam(make_model):
    ours, reference = make_model(), make_model()
    train(ours, create_global_norm_adam(0.01, max_grad_norm=1e9, **SETTINGS), steps=5)
    train(reference, Adam(0.01, grad_clip=0.0, **SETTINGS), steps=5)
    assert all(numpy.allclose(a, b, atol=1e-6) for a, b in zip(params(ours), params(reference)))
    assert not all(numpy.allclose(a, b) for a, b in zip(params(ours), params(make_model()))), (
        "training moved nothing"
    )


@pytest.mark.parametrize("make_model", [thinc_model, torch_model], ids=["thinc", "torch"])
def test_above_the_clip_all_gradients_shrink_by_one_factor(make_model):
    spike = lambda step: 1000.0 if step == 2 else 1.0  # noqa: E731
    norms = []

    class Recording(GlobalNormAdam):  # the joint norm of each step, to clip the reference by hand
        def apply_pending(self):
            super().apply_pending()
            norms.append(self.last_grad_norm)

    ours, reference = make_model(), make_model()
    train(
        ours,
        Recording(0.01, max_grad_norm=0.5, grad_clip=0.0, **SETTINGS),
        steps=4,
        grad_scale=spike,
    )
    assert norms[2] > 100 * norms[1] > 100 * 0.5, (
        "the spike should be clipped, and the other steps too"
    )
    factors = [min(1.0, 0.5 / (norm + 1e-6)) for norm in norms]
    train(
        reference,
        Adam(0.01, grad_clip=0.0, **SETTINGS),
        steps=4,
        grad_scale=lambda s: spike(s) * factors[s],
    )
    assert all(numpy.allclose(a, b, atol=1e-5) for a, b in zip(params(ours), params(reference)))


def test_the_step_waits_for_step_schedules():
    model, optimizer = thinc_model(), create_global_norm_adam(0.01, max_grad_norm=1.0)
    before = params(model)
    out, backprop = model.begin_update(numpy.ones((2, 3), dtype="f"))
    backprop(out)
    model.finish_update(optimizer)
    assert all(numpy.array_equal(a, b) for a, b in zip(params(model), before))
    assert all(
        not node.get_grad(name).any()
        for node in model.walk()
        for name in node.param_names
        if node.has_grad(name)
    )
    optimizer.step_schedules()
    assert not any(numpy.array_equal(a, b) for a, b in zip(params(model), before))
    assert optimizer.pending == []


def test_without_a_joint_clip_it_is_thincs_adam_with_its_own_clip():
    ours, reference = thinc_model(), thinc_model()
    optimizer = create_global_norm_adam(0.01, max_grad_norm=0.0, grad_clip=0.1, **SETTINGS)
    train(ours, optimizer, steps=3)
    train(reference, Adam(0.01, grad_clip=0.1, **SETTINGS), steps=3)
    assert all(numpy.array_equal(a, b) for a, b in zip(params(ours), params(reference)))
    assert optimizer.pending == [] and optimizer.last_grad_norm is None
