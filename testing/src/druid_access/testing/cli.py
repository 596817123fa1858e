"""The ``druid-access-testing`` command line: the test servers and launchers, in the foreground.

Sub-commands import their modules lazily so that ``--help`` pays for none of them (and needs
none of their dependencies).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from druid_access.cli import dispatch

PROG = "druid-access-testing"


def _cmd_controlplane(args: argparse.Namespace) -> int:
    from druid_access.testing import controlplane

    return controlplane.run_foreground(Path(args.dir))


def _cmd_druid(args: argparse.Namespace) -> int:
    from druid_access.testing import druid

    version = args.druid_version or druid.NEWEST_VERSION  # what `make demo` runs
    if version not in druid.SUPPORTED_VERSIONS:
        supported = ", ".join(druid.SUPPORTED_VERSIONS)
        print(f"{PROG} druid: --druid-version must be one of {supported}", file=sys.stderr)
        return 2
    return druid.run_foreground(Path(args.dir), admin_password=args.admin_password, version=version)


def _cmd_fake_coordinator(args: argparse.Namespace) -> int:
    from druid_access.testing import fake_coordinator

    return fake_coordinator.run_foreground(
        port=args.port,
        admin_password=args.admin_password,
        authenticator=args.authenticator,
        authorizer=args.authorizer,
        host=args.host,
    )


def _cmd_fake_pivot(args: argparse.Namespace) -> int:
    from druid_access.testing import fake_pivot

    return fake_pivot.run_foreground(port=args.port, token=args.token, host=args.host)


def _listen_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; 0.0.0.0 only inside a pod, e.g. make kind-e2e)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    cp = sub.add_parser(
        "controlplane", help="run a local etcd + kube-apiserver + kube-controller-manager until interrupted"
    )
    cp.add_argument("--dir", required=True, help="directory for data, certificates and kubeconfigs")
    cp.set_defaults(func=_cmd_controlplane)

    dr = sub.add_parser(
        "druid", help="run a real Druid Coordinator (+ ZooKeeper) with basic security until interrupted"
    )
    dr.add_argument(
        "--dir", required=True, help="directory for configuration, data and logs (data reset on start)"
    )
    dr.add_argument("--admin-password", required=True, help="password of the bootstrapped admin user")
    dr.add_argument(
        "--druid-version",
        default=None,
        help="Druid release to run, as built by `make druid`: 27.0.0 or 37.0.0 (default: the newest, "
        "as `make demo` runs)",
    )
    dr.set_defaults(func=_cmd_druid)

    fc = sub.add_parser("fake-coordinator", help="serve a fake Druid Coordinator (basic-security API)")
    _listen_flags(fc)
    fc.add_argument("--admin-password", required=True, help="password of the bootstrapped admin user")
    fc.add_argument("--authenticator", default="basic", help="authenticator name (default: basic)")
    fc.add_argument("--authorizer", default="basic", help="authorizer name (default: basic)")
    fc.set_defaults(func=_cmd_fake_coordinator)

    fp = sub.add_parser("fake-pivot", help="serve a fake Imply Pivot connections API")
    _listen_flags(fp)
    fp.add_argument("--token", required=True, help="API token accepted in x-imply-api-token")
    fp.set_defaults(func=_cmd_fake_pivot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
