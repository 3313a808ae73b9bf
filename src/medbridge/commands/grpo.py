from medbridge.commands import add_training_arguments as add_arguments  # noqa: F401
from medbridge.commands import run_training


def run(args) -> None:
    run_training(args, "grpo")
