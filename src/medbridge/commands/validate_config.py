import json

from medbridge.commands import add_config_argument


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--set", default="{}", help="JSON overrides merged into the config, e.g. '{\"seed\": 1}'")
    p.add_argument("--out", help="write the validated config here as JSON (freeze-config)")


def run(args) -> None:
    from medbridge import MedbridgeError
    from medbridge.config import freeze_config, load_config

    try:
        overrides = json.loads(args.set)
    except json.JSONDecodeError as e:
        raise MedbridgeError(f"--set is not valid JSON ({e}); pass a JSON object") from e
    cfg = load_config(args.config, overrides)
    if args.out:
        freeze_config(cfg, args.out)
    print(
        f"config OK: run {cfg['run_name']!r}, {len(cfg['data']['datasets'])} datasets, models {sorted(cfg['models'])}"
    )
