"""A new sampler: deterministic DDIM for epsilon models on the grid t = linspace(T - 1, 0, N), rounded."""

import math

import sdo
from sdo.samplers import Sampler, register_sampler


class LinspaceDDIM(Sampler):
    """x_{i-1} = sqrt(abar_{i-1}) x0_hat + sqrt(1 - abar_{i-1}) eps (Song et al., Eq. 12 with eta = 0)."""

    def __init__(self, schedule, prediction_type, steps):
        super().__init__(steps)
        if prediction_type != "epsilon":
            raise ValueError(f"linspace-ddim needs an epsilon model; got {prediction_type!r}")
        T = schedule.num_train_timesteps
        self.times = [round((T - 1) * (1 - p / max(steps - 1, 1))) for p in range(steps)]  # t_N .. t_1
        abar = schedule.alphas_cumprod()
        self.abar = [float(abar[t]) for t in self.times] + [1.0]  # the clean end point

    def timestep(self, i):
        return float(self.times[self._check_index(i)])

    def step(self, i, x, m, history, noise=None):
        p = self._check_index(i)  # position in execution order, p = N - i
        a, a_next = self.abar[p], self.abar[p + 1]
        x0 = (x - math.sqrt(1 - a) * m) / math.sqrt(a)
        return math.sqrt(a_next) * x0 + math.sqrt(1 - a_next) * m, history


register_sampler("linspace-ddim", LinspaceDDIM)

if __name__ == "__main__":
    problem = sdo.Problem(
        sdo.models.get("gmm"), sdo.samplers.get("linspace-ddim", steps=6), sdo.objectives.get("target-mse")
    )
    print(sdo.compare(problem, ["checkpoint", "sdo"])[["estimator", "cosine", "rel_err"]])
