"""Optimizers: TensorFlow 1's Adam beside PyTorch's own."""

from __future__ import annotations

import math

import torch


class TFAdam(torch.optim.Optimizer):
    """Adam as TensorFlow 1's ``tf.train.AdamOptimizer`` computes it.

    .. math::

        m &\\leftarrow \\beta_1 m + (1-\\beta_1) g, \\qquad v \\leftarrow \\beta_2 v + (1-\\beta_2) g^2 \\\\
        lr_t &= lr \\sqrt{1-\\beta_2^t} / (1-\\beta_1^t) \\\\
        w &\\leftarrow w - lr_t\\, m / (\\sqrt{v} + \\epsilon)

    It differs from :class:`torch.optim.Adam` only in where ``ε`` enters: here it is added to
    the uncorrected ``sqrt(v)``. With TensorFlow's initial weights a lecture example then
    follows TensorFlow's loss curve.
    """

    def __init__(self, params, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params, grads, means, squares = [], [], [], []
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                params.append(param)
                grads.append(param.grad)
                means.append(state["exp_avg"])
                squares.append(state["exp_avg_sq"])
            if not params:
                continue
            step = self.state[params[0]]["step"]
            lr_t = group["lr"] * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
            torch._foreach_lerp_(means, grads, 1 - beta1)
            torch._foreach_mul_(squares, beta2)
            torch._foreach_addcmul_(squares, grads, grads, 1 - beta2)
            denominators = torch._foreach_sqrt(squares)
            torch._foreach_add_(denominators, group["eps"])
            torch._foreach_addcdiv_(params, means, denominators, -lr_t)
        return loss


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0,
                   device: torch.device | str | None = None) -> torch.optim.Optimizer:
    """The optimizer factory of every charrnn trainer and of the lecture.

    ``'tf-adam'`` is TensorFlow 1's Adam (:class:`TFAdam`). ``'adam'`` is PyTorch's Adam, or
    AdamW when ``weight_decay`` is above 0; given a CPU or CUDA ``device``, on PyTorch's fused
    kernel where it has one (the lecture passes none, keeping the plain loops' numbers).
    """
    if name == "tf-adam":
        if weight_decay:
            raise ValueError("tf-adam has no weight decay; use 'adam'")
        return TFAdam(params, lr=lr)
    if name != "adam":
        raise ValueError(f"unknown optimizer {name!r}; expected 'adam' or 'tf-adam'")
    kind = torch.optim.AdamW if weight_decay > 0 else torch.optim.Adam
    params = list(params)
    if device is not None and torch.device(device).type in ("cuda", "cpu"):
        try:
            return kind(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return kind(params, lr=lr, weight_decay=weight_decay)
