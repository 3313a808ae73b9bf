from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--model", required=True, help="a hub model role of the config (models.<role>.source: hub)")
    p.add_argument("--out", required=True, help="JSON record of what was fetched (repo, revision, commit, files)")


def run(args) -> None:
    from medbridge.hub import download
    from medbridge.io import write_json

    record = download(config_from(args), args.model)
    write_json(args.out, record)
    print(f"{args.model}: " + ", ".join(f"{r['id']}@{r['commit']}" for r in record["repos"]))
