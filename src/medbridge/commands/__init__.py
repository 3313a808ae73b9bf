"""One module per CLI verb: argument parsing and a call into the library, nothing else."""


def add_config_argument(parser) -> None:
    parser.add_argument("--config", required=True, help="the run's config (results/<run>/config.json or a YAML)")


def config_from(args) -> dict:
    from medbridge.config import load_config

    return load_config(args.config)
