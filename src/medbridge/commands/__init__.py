"""One module per CLI verb: argument parsing and a call into the library, nothing else."""


def add_config_argument(parser) -> None:
    parser.add_argument("--config", required=True, help="the run's config (results/<run>/config.json or a YAML)")


def config_from(args) -> dict:
    from medbridge.config import load_config
    from medbridge.hub import use_cache

    cfg = load_config(args.config)
    use_cache(cfg, getattr(args, "_verb", None))  # the configured hub cache; model-loading verbs read it offline
    return cfg


def add_training_arguments(parser) -> None:
    add_config_argument(parser)
    parser.add_argument("--init-model", required=True, help="model to start from: a config role or a model directory")
    parser.add_argument("--train-items", required=True, nargs="+", help="MCQ JSONL file(s) to train on (concatenated)")
    parser.add_argument("--out", required=True, help="model directory to write (save_pretrained + training_log.csv)")


def run_training(args, method: str) -> None:
    """Train with `method` (sft | grpo) here, or through `accelerate launch` when the config asks for it."""
    import importlib
    import sys

    from medbridge.train.common import end_processes, on_main_process, write_model_sidecar
    from medbridge.train.launch import relaunch

    cfg = config_from(args)
    if relaunch(cfg, sys.argv[1:]):  # with train.accelerate_config: the launched processes trained and wrote it all
        print(f"wrote {args.out}")
        return
    train = getattr(importlib.import_module(f"medbridge.train.{method}"), f"train_{method}")
    train(cfg, args.init_model, args.train_items, args.out)
    on_main_process(write_model_sidecar, cfg, method, args.init_model, args.train_items, args.out)
    on_main_process(print, f"wrote {args.out}")
    end_processes()
