def add_arguments(p) -> None:
    p.add_argument("--out", help="write the ledger as Markdown here (docs/FIDELITY.md); default: print it")
    p.add_argument("--config", help="also list the ledger rows where this config departs from the authors' values")


def run(args) -> None:
    from medbridge.fidelity import deviations, render_markdown
    from medbridge.io import atomic_path

    text = render_markdown()
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    if args.config:
        from medbridge.commands import config_from

        cfg = config_from(args)
        print(f"rows where {args.config} departs from the authors: {', '.join(deviations(cfg)) or 'none'}")
