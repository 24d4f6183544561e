"""Wrap an estimator as an autograd.Function so torch.autograd.gradcheck compares its gradient with
central finite differences of the loss (an independent check of the estimator)."""

from __future__ import annotations

import torch

import sdo


def latent_loss_fn(problem: sdo.Problem, estimator: str, **options):
    """z -> J(x_0(z)) whose backward is the estimator's gradient wrt the latent."""

    class Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            problem.latent = z.detach().clone()
            with torch.enable_grad():  # Function.forward runs under no_grad
                res = sdo.grad(problem, estimator, **options)
            ctx.save_for_backward(res.grads["latent"])
            return torch.tensor(res.loss, dtype=z.dtype)

        @staticmethod
        def backward(ctx, g):
            (grad,) = ctx.saved_tensors
            return g * grad

    return Fn.apply


def params_loss_fn(problem: sdo.Problem, estimator: str, **options):
    """(theta_1, ..., theta_P) -> J whose backward is the estimator's gradient wrt theta."""
    params = problem.parameters()
    names = list(params)

    class Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *values):
            with torch.no_grad():
                for n, v in zip(names, values):
                    params[n].copy_(v)
            with torch.enable_grad():
                res = sdo.grad(problem, estimator, **options)
            ctx.save_for_backward(*[res.grads[n] for n in names])
            return torch.tensor(res.loss, dtype=values[0].dtype)

        @staticmethod
        def backward(ctx, g):
            return tuple(g * grad for grad in ctx.saved_tensors)

    return Fn.apply, [params[n].detach().clone().requires_grad_(True) for n in names]
