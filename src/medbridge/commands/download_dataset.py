from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument("--repo", required=True, help="a hub dataset the config reads, as org--name (the cache's spelling)")
    p.add_argument("--out", required=True, help="JSON record of what was fetched (id, revision, commit, files)")


def run(args) -> None:
    from medbridge.hub import download_dataset
    from medbridge.io import write_json

    record = download_dataset(config_from(args), args.repo)
    write_json(args.out, record)
    print(f"{record['id']}@{record['commit']}: {len(record['files'])} files in {record['cache']}")
