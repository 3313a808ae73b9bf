from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--init-model", required=True, help="model to start from: a config role or a model directory")
    p.add_argument("--train-items", required=True, nargs="+", help="MCQ JSONL file(s) to train on (concatenated)")
    p.add_argument("--out", required=True, help="model directory to write (save_pretrained + training_log.csv)")


def run(args) -> None:
    import os
    import sys

    from medbridge.train.common import write_model_sidecar
    from medbridge.train.launch import relaunch

    cfg = config_from(args)
    if not relaunch(cfg, sys.argv[1:]):  # with train.accelerate_config, launched workers train instead
        from medbridge.train.sft import train_sft

        train_sft(cfg, args.init_model, args.train_items, args.out)
        if "LOCAL_RANK" in os.environ:  # a launched worker: the launching process writes the sidecar
            return
    write_model_sidecar(cfg, "sft", args.init_model, args.train_items, args.out)
    print(f"wrote {args.out}")
