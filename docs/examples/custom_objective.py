"""A new objective: J(x) = -mean(x), brighter decoded images are better."""

import torch

import sdo
from sdo.objectives import register_objective


class Brightness(torch.nn.Module):
    """J(x) = -mean(x) over the decoded batch: one scalar, lower is better."""

    def forward(self, x):
        return -x.mean()


register_objective("brightness", Brightness)

if __name__ == "__main__":
    problem = sdo.Problem(
        sdo.models.get("unet-tiny"), sdo.samplers.get("ddim", steps=4), sdo.objectives.get("brightness")
    )
    print(sdo.grad(problem, "sdo").loss)
    # a plain function works too, without registering it:
    problem.objective = sdo.objectives.get("callable", fn=lambda x: -x.mean())
    print(sdo.grad(problem, "sdo").loss)
