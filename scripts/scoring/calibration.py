"""Calibrate probabilities on held-out data: the scale and shift of
sigmoid(scale * logit(p) + shift) that make a score of 0.8 right about 80% of the time.

    fit = fit_calibration(right=[True, False, True, True], probabilities=[0.99, 0.97, 0.9, 0.6])
    fit.scale, fit.shift      # what entity_confidence's config stores (scale 1, shift 0: as is)

Platt scaling on the logit: with shift 0 it is temperature scaling (scale = 1 / temperature). The
fit minimises the log loss plus a Gaussian prior pulling (scale, shift) towards (1, 0), so that a
small dev set (a few dozen entities) or one that the scores already separate perfectly gives a
moderate correction instead of an extreme one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from scripts.scoring.entity_confidence import EPSILON, logit, sigmoid

PRIOR = 1.0  # weight of the prior: as much as one extra observation per parameter
MAX_STEPS = 50


@dataclass(frozen=True)
class Calibration:
    scale: float
    shift: float
    n: int  # the probabilities it was fitted on
    log_loss_before: float  # mean log loss of the probabilities as they were
    log_loss_after: float  # and calibrated


def log_loss(*, right: Sequence[bool], probabilities: Sequence[float]) -> float:
    """Mean negative log-likelihood of the right/wrong outcomes under the probabilities."""
    total = 0.0
    for ok, p in zip(right, probabilities):
        p = min(1.0 - EPSILON, max(EPSILON, p))
        total -= math.log(p if ok else 1.0 - p)
    return total / max(1, len(right))


def softplus(z: float) -> float:
    """log(1 + exp(z)) without overflow."""
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def objective(
    scale: float, shift: float, *, xs: Sequence[float], ys: Sequence[float], prior: float
) -> float:
    """sum of the log loss of sigmoid(scale * x + shift) + prior / 2 * distance from (1, 0)^2."""
    loss = sum(softplus(scale * x + shift) - y * (scale * x + shift) for x, y in zip(xs, ys))
    return loss + prior / 2 * ((scale - 1.0) ** 2 + shift**2)


def fit_calibration(
    *, right: Sequence[bool], probabilities: Sequence[float], prior: float = PRIOR
) -> Calibration:
    """The (scale, shift) with the least log loss on these outcomes under the prior, found by
    Newton's method with a backtracking line search (the loss is convex; a full Newton step can
    overshoot where the scores bunch at 0 or 1); (1, 0) where there is nothing to fit on, or
    where the fit would not lower the log loss."""
    if len(right) != len(probabilities):
        raise ValueError(f"{len(right)} outcomes but {len(probabilities)} probabilities")
    xs = [logit(p) for p in probabilities]
    ys = [1.0 if ok else 0.0 for ok in right]
    scale, shift = 1.0, 0.0
    current = objective(scale, shift, xs=xs, ys=ys, prior=prior)
    for _ in range(MAX_STEPS if xs else 0):
        # gradient and Hessian of the objective
        g_scale, g_shift = prior * (scale - 1.0), prior * shift
        h_ss, h_sb, h_bb = prior, 0.0, prior
        for x, y in zip(xs, ys):
            p = sigmoid(scale * x + shift)
            w = p * (1.0 - p)
            g_scale += (p - y) * x
            g_shift += p - y
            h_ss += w * x * x
            h_sb += w * x
            h_bb += w
        det = h_ss * h_bb - h_sb * h_sb
        step_scale = (h_bb * g_scale - h_sb * g_shift) / det
        step_shift = (h_ss * g_shift - h_sb * g_scale) / det
        size = 1.0
        while size > 1e-6:  # halve the step until the objective goes down
            trial = objective(
                scale - size * step_scale, shift - size * step_shift, xs=xs, ys=ys, prior=prior
            )
            if trial <= current:
                break
            size /= 2
        else:
            break  # no step lowers it: at the minimum, as far as floats tell
        scale, shift = scale - size * step_scale, shift - size * step_shift
        improvement, current = current - trial, trial
        if improvement < 1e-12 * max(1.0, abs(current)):
            break
    before = log_loss(right=right, probabilities=probabilities)
    after = log_loss(right=right, probabilities=[sigmoid(scale * x + shift) for x in xs])
    if after > before:  # the prior's pull alone can do that on a tiny set: keep the scores
        scale, shift, after = 1.0, 0.0, before
    return Calibration(
        scale=scale, shift=shift, n=len(xs), log_loss_before=before, log_loss_after=after
    )
