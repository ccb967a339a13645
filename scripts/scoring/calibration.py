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


def fit_calibration(
    *, right: Sequence[bool], probabilities: Sequence[float], prior: float = PRIOR
) -> Calibration:
    """The (scale, shift) with the least log loss on these outcomes under the prior, found by
    Newton's method (the loss is convex); (1, 0) where there is nothing to fit on."""
    if len(right) != len(probabilities):
        raise ValueError(f"{len(right)} outcomes but {len(probabilities)} probabilities")
    xs = [logit(p) for p in probabilities]
    ys = [1.0 if ok else 0.0 for ok in right]
    scale, shift = 1.0, 0.0
    for _ in range(MAX_STEPS if xs else 0):
        # gradient and Hessian of sum(log loss) + prior / 2 * ((scale - 1)^2 + shift^2)
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
        scale, shift = scale - step_scale, shift - step_shift
        if max(abs(step_scale), abs(step_shift)) < 1e-9:
            break
    after = [sigmoid(scale * x + shift) for x in xs]
    return Calibration(
        scale=scale,
        shift=shift,
        n=len(xs),
        log_loss_before=log_loss(right=right, probabilities=probabilities),
        log_loss_after=log_loss(right=right, probabilities=after),
    )
