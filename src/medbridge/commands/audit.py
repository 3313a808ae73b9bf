def add_arguments(p) -> None:
    p.add_argument(
        "target", help="an artifact CSV (with --model/--column), a metrics JSON, or a generations JSONL's metrics"
    )
    p.add_argument("--model", help="row of the artifact (model name)")
    p.add_argument("--column", help="column of the artifact (dataset / benchmark)")


def run(args) -> None:
    import sys

    from medbridge import MedbridgeError
    from medbridge.audit import AuditReport, audit_cell, audit_metrics

    report = AuditReport()
    if args.target.endswith(".csv"):
        if not (args.model and args.column):
            raise MedbridgeError("auditing an artifact cell needs --model and --column")
        audit_cell(args.target, args.model, args.column, report)
    elif args.target.endswith(".json"):
        audit_metrics(args.target, report)
    else:
        raise MedbridgeError(
            f"cannot audit {args.target}: pass an artifact .csv (+ --model --column) or a metrics .json"
        )
    print(report.text())
    if report.problems:
        sys.exit(1)
