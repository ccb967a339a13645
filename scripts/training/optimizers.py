"""Adam that clips the norm of all gradients of a step together, as torch's clip_grad_norm_ does.

    [training.optimizer]
    @optimizers = "ner_textcat.Adam.v1"
    max_grad_norm = 1.0     # 0: thinc's Adam.v1 exactly
    grad_clip = 0.0         # thinc's per-parameter clip, after the joint one

thinc's Adam clips each parameter's gradient on its own (grad_clip), as spaCy hands it the
parameters one at a time in finish_update. A spike in the loss then still moves every small tensor
by a full step, and Adam's moments remember it; fine-tuning a transformer on a few hundred
documents can diverge so (BENCHMARKS.md). Clipping the norm of all gradients as one vector scales
the whole step down instead. So this optimizer holds each gradient it is given (a copy: the caller
zeroes its own) and applies Adam to all of them in step_schedules(), which spaCy's training loop
calls once after every component's finish_update, before the next step and before any evaluation.
Weights are updated in place, in the arrays the models hold (thinc's parameters; torch parameters
share their memory with the arrays the PyTorch shim passes). A hand-written loop must call
step_schedules() after finish_update too, as thinc asks anyway.

spaCy's losses sum over documents and tokens where Hugging Face's average over the batch, so the
joint norm runs far above 1 (BENCHMARKS.md), and a clip at 1.0 acts on every step, weighing each
step alike whatever its size.

Training only: [training] is resolved by `spacy train`, never when a pipeline is loaded.
"""

# No `from __future__ import annotations`: confection builds pydantic models from the signature.
import math
from typing import Any, List, Optional, Tuple, Union

from spacy.util import registry
from thinc.api import Optimizer
from thinc.types import FloatsXd

Pending = Tuple[Any, FloatsXd, FloatsXd, float]


class GlobalNormAdam(Optimizer):
    """thinc's Optimizer (Adam) with the update of a step deferred to step_schedules(), where all
    gradients are clipped together to a norm of at most max_grad_norm."""

    def __init__(self, learn_rate: Any, *, max_grad_norm: float, **settings: Any) -> None:
        super().__init__(learn_rate, **settings)
        self.max_grad_norm = max_grad_norm
        self.pending: List[Pending] = []
        self.last_grad_norm: Optional[float] = None  # before clipping; for logs and tests

    def __call__(
        self, key: Any, weights: FloatsXd, gradient: FloatsXd, *, lr_scale: float = 1.0
    ) -> Tuple[FloatsXd, FloatsXd]:
        if not self.max_grad_norm:
            return super().__call__(key, weights, gradient, lr_scale=lr_scale)
        if len(gradient) < 1:
            return weights, gradient
        self.pending.append((key, weights, gradient.copy(), lr_scale))
        gradient *= 0
        return weights, gradient

    def step_schedules(self) -> None:
        self.apply_pending()
        super().step_schedules()

    def apply_pending(self) -> None:
        """Adam on every gradient held since the last step, all scaled by one factor so that their
        joint norm is at most max_grad_norm."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        norm = math.sqrt(sum(float((gradient * gradient).sum()) for _, _, gradient, _ in pending))
        self.last_grad_norm = norm
        scale = self.max_grad_norm / (norm + 1e-6) if norm > self.max_grad_norm else 1.0
        for key, weights, gradient, lr_scale in pending:
            if scale != 1.0:
                gradient *= scale
            updated, _ = super().__call__(key, weights, gradient, lr_scale=lr_scale)
            if updated is not weights:
                weights[...] = updated  # a view of the same memory already; a copy would land here


@registry.optimizers("ner_textcat.Adam.v1")
def create_global_norm_adam(
    learn_rate: Union[float, Any] = 0.001,
    *,
    max_grad_norm: float = 1.0,
    grad_clip: float = 0.0,
    L2: float = 0.0,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-08,
    L2_is_weight_decay: bool = True,
    use_averages: bool = False,
) -> GlobalNormAdam:
    """thinc's Adam.v1 settings, and max_grad_norm: the clip on the joint norm (0: none, which is
    thinc's Adam.v1)."""
    return GlobalNormAdam(
        learn_rate,
        max_grad_norm=max_grad_norm,
        grad_clip=grad_clip,
        L2=L2,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        L2_is_weight_decay=L2_is_weight_decay,
        use_averages=use_averages,
    )
