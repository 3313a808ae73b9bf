from medbridge.commands import add_config_argument, config_from


def add_arguments(p) -> None:
    add_config_argument(p)
    p.add_argument(
        "--name", required=True, help="VQA source to imitate: a benchmark, pmc_vqa_train or medvlthinker_eval"
    )
    p.add_argument("--out", required=True, help="folder to write (save_to_disk layout, one subfolder per config)")


def run(args) -> None:
    from medbridge.data.vqa.build import write_fixture

    out = write_fixture(config_from(args), args.name, args.out)
    print(f"wrote a {args.name} fixture to {out}")
