"""The paper's applications (Sec. 5) on the suite's trained Fashion-MNIST models: adversarial latent (5.1.4),
style guidance (5.1.2) and LoRA reward fine-tuning (5.2), each a function, a CLI command and a table + figure."""

from .adversarial import AdversarialConfig, run_adversarial
from .reward import RewardConfig, run_reward
from .style import StyleConfig, run_style

TASKS = ("adversarial", "style", "reward")

__all__ = [
    "TASKS",
    "AdversarialConfig",
    "RewardConfig",
    "StyleConfig",
    "run_adversarial",
    "run_reward",
    "run_style",
]
