"""The ``druid-access`` command line: the operator and its tools (run, export, diff, crds).

Sub-commands import their modules lazily so that ``druid-access crds`` does not pay for kopf.
The test servers and launchers (fake Coordinator, fake Pivot, control plane, real Druid) are
not here: they are the ``druid-access-testing`` command of the separate ``druid-access-testing``
distribution (``testing/`` in the repository), which the operator's wheel and image do not carry.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_crds(args: argparse.Namespace) -> int:
    from druid_access import crdgen

    if args.check:
        stale = crdgen.check(Path(args.out))
        for name in stale:
            print(f"{args.out}/{name} is out of date; run `make crds`", file=sys.stderr)
        return 1 if stale else 0
    for path in crdgen.write(Path(args.out)):
        print(path)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from druid_access import runner

    if not args.all_namespaces and not args.namespace:
        print("druid-access run: give --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    options = runner.RunOptions(
        config_path=Path(args.config),
        namespaces=args.namespace or [],
        all_namespaces=args.all_namespaces,
        health=args.health,
        metrics_port=args.metrics_port,
        peering=args.peering,
        priority=args.priority,
    )
    return runner.main(options, verbose=args.verbose)


def _add_target_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say which Druid cluster and Pivot instance to read, and as whom."""
    druid = parser.add_argument_group("Druid")
    druid.add_argument("--coordinator-url", help="base URL of the Coordinator (or the Router before it)")
    druid.add_argument("--username", default="admin", help="Druid user to read as (default: admin)")
    druid.add_argument("--password-env", metavar="VAR", help="environment variable holding its password")
    druid.add_argument("--authenticator", default="basic", help="authenticator name (default: basic)")
    druid.add_argument("--authorizer", default="basic", help="authorizer name (default: basic)")
    druid.add_argument("--ca-bundle", metavar="FILE", help="PEM file of CAs to trust (https)")
    pivot = parser.add_argument_group("Pivot")
    pivot.add_argument("--pivot-url", help="base URL of Pivot")
    pivot.add_argument("--pivot-token-env", metavar="VAR", help="environment variable holding the API token")
    names = parser.add_argument_group("the objects written")
    names.add_argument(
        "--cluster", help="spec.cluster of the Druid objects (the operator configuration's name)"
    )
    names.add_argument("--pivot", help="spec.pivot of the connections (the operator configuration's name)")
    names.add_argument(
        "--config",
        metavar="FILE",
        help="the operator's configuration: the protected names of --cluster and --pivot are skipped "
        "(default: admin and druid_system)",
    )


def _cmd_diff(args: argparse.Namespace) -> int:
    from druid_access import commands

    return commands.run_diff(args)


def _cmd_export(args: argparse.Namespace) -> int:
    from druid_access import commands

    return commands.run_export(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="druid-access", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator")
    run.add_argument("--config", required=True, help="operator configuration file (YAML)")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("--namespace", action="append", help="namespace to watch (repeatable)")
    scope.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument(
        "--health",
        default="http://0.0.0.0:8080/healthz",
        help="liveness/readiness endpoint URL to serve ('' to disable)",
    )
    run.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    run.add_argument(
        "--peering",
        default=None,
        help="kopf peering name for high availability: one replica reconciles, the others stand by "
        "(needs the KopfPeering CRDs); omit to run standalone",
    )
    run.add_argument(
        "--priority", type=int, default=None, help="peering priority (default: random, so replicas never tie)"
    )
    run.add_argument("--verbose", action="store_true", help="debug logging")
    run.set_defaults(func=_cmd_run)

    ex = sub.add_parser(
        "export",
        help="write the custom resources that describe what a Druid cluster and a Pivot instance hold",
    )
    _add_target_flags(ex)
    ex.add_argument("--namespace", help="metadata.namespace of the objects (default: none, kubectl's)")
    ex.add_argument("--output", "-o", metavar="FILE", help="write the YAML here instead of stdout")
    ex.set_defaults(func=_cmd_export)

    df = sub.add_parser(
        "diff",
        help="show what the operator would write to the live targets for the objects in files; "
        "exit 0: nothing, 2: something, 1: an error",
    )
    _add_target_flags(df)
    df.add_argument(
        "-f",
        "--file",
        action="append",
        required=True,
        metavar="FILE_OR_DIR",
        help="YAML/JSON file or directory of custom resources, and of the Secrets they read (repeatable)",
    )
    df.set_defaults(func=_cmd_diff)

    crds = sub.add_parser("crds", help="render the CustomResourceDefinitions from the models")
    crds.add_argument("--out", default="crds", help="directory to write one YAML file per kind into")
    crds.add_argument("--check", action="store_true", help="exit 1 if the files in --out differ")
    crds.set_defaults(func=_cmd_crds)

    return parser


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run the sub-command it names (also ``druid-access-testing``'s)."""
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
