"""The ``export`` and ``diff`` commands' plumbing: flags to clients, failures to one line and exit code 1.

What a command reports is said in one line on stderr, never with a traceback: a flag missing,
an environment variable not set, a target that cannot be reached or refuses the credentials.
Credentials come only from environment variables, so they are in no shell history or process list.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from druid_access import config as operator_config
from druid_access.clients import (
    ApiError,
    AuthenticatorName,
    AuthorizerName,
    CertificateNotTrusted,
    CoordinatorClient,
    HttpOptions,
    PivotClient,
)
from druid_access.diff import InputError, Report, Targets, diff, load_documents
from druid_access.export import export
from druid_access.observation import DruidTarget, PivotTarget


class CommandError(Exception):
    """What the user must fix, said in one line."""


def _secret_env(variable: str | None, flag: str, for_flag: str) -> SecretStr:
    if not variable:
        raise CommandError(f"{for_flag} needs {flag} VAR (the environment variable holding the credential)")
    value = os.environ.get(variable)
    if value is None:
        raise CommandError(f"environment variable {variable} ({flag}) is not set")
    if not value:
        raise CommandError(f"environment variable {variable} ({flag}) is empty")
    return SecretStr(value)


def _options(args: argparse.Namespace) -> HttpOptions:
    ca = args.ca_bundle
    if ca and not Path(ca).is_file():
        raise CommandError(f"--ca-bundle {ca}: no such file")
    return HttpOptions(ca_file=ca)


def _url(value: str, flag: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise CommandError(f"{flag} {value!r}: give an http:// or https:// URL")
    if "@" in urlsplit(value).netloc:  # never echoed: it may hold a password
        raise CommandError(f"{flag}: give the credentials with their own flags, not in the URL")
    return value


def _config(args: argparse.Namespace) -> operator_config.OperatorConfig | None:
    return operator_config.load(Path(args.config)) if args.config else None


def _protected(
    loaded: operator_config.OperatorConfig | None, args: argparse.Namespace
) -> operator_config.ProtectedPrincipals:
    """The protected names of the configuration's --cluster and --pivot (default: admin, druid_system)."""
    if loaded is None:
        return operator_config.ProtectedPrincipals()
    cluster = loaded.clusters.get(args.cluster or "default")
    pivot = loaded.pivots.get(args.pivot or "default")
    base = cluster.protected if cluster else operator_config.ProtectedPrincipals()
    if pivot is not None:
        base = base.model_copy(update={"connections": pivot.protected.connections})
    return base


@asynccontextmanager
async def _targets(args: argparse.Namespace) -> AsyncIterator[tuple[DruidTarget | None, PivotTarget | None]]:
    """The clients the flags name, closed on exit."""
    if not args.coordinator_url and not args.pivot_url:
        raise CommandError("give --coordinator-url, --pivot-url or both")
    async with AsyncExitStack() as stack:
        druid = pivot = None
        if args.coordinator_url:
            password = _secret_env(args.password_env, "--password-env", "--coordinator-url")
            client = CoordinatorClient(
                _url(args.coordinator_url, "--coordinator-url"),
                username=args.username,
                password=password,
                options=_options(args),
            )
            await stack.enter_async_context(client)
            druid = DruidTarget(
                client, AuthenticatorName(args.authenticator), AuthorizerName(args.authorizer), args.cluster
            )
        if args.pivot_url:
            token = _secret_env(args.pivot_token_env, "--pivot-token-env", "--pivot-url")
            pivot_client = PivotClient(
                _url(args.pivot_url, "--pivot-url"), token=token, options=_options(args)
            )
            await stack.enter_async_context(pivot_client)
            pivot = PivotTarget(pivot_client, args.pivot)
        yield druid, pivot


async def _export(args: argparse.Namespace) -> str:
    protected = _protected(_config(args), args)
    async with _targets(args) as (druid, pivot):
        text, skipped = await export(
            druid=druid, pivot=pivot, namespace=args.namespace, protected=protected, progress=_progress
        )
    for item in skipped:
        _progress(str(item))
    return text


def _progress(line: str) -> None:
    print(f"druid-access export: {line}", file=sys.stderr, flush=True)


def _failed(command: str, error: Exception) -> int:
    message = _explain(error) if isinstance(error, ApiError) else str(error)
    print(f"druid-access {command}: {message}", file=sys.stderr)
    return 1


_FAILURES = (CommandError, operator_config.ConfigError, InputError, ApiError)


def run_export(args: argparse.Namespace) -> int:
    try:
        text = asyncio.run(_export(args))
    except _FAILURES as error:
        return _failed("export", error)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as error:
            print(f"druid-access export: cannot write {args.output}: {error.strerror}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


async def _diff(args: argparse.Namespace) -> Report:
    documents = load_documents(args.file)
    loaded = _config(args)
    async with _targets(args) as (druid, pivot):
        targets = Targets(druid=druid, pivot=pivot, protected=_protected(loaded, args), config=loaded)
        return await diff(documents, targets)


def run_diff(args: argparse.Namespace) -> int:
    """Exit 0: nothing would change; 2: something would; 1: an error (like ``diff``)."""
    try:
        report = asyncio.run(_diff(args))
    except _FAILURES as error:
        return _failed("diff", error)
    sys.stdout.write(report.text())
    if report.errors:
        return 1
    return 2 if report.changes else 0


def _explain(error: ApiError) -> str:
    """The failure, with what usually causes it."""
    if error.status == 401:
        return f"{error} (the user name or password is wrong)"
    if error.status == 403:
        return f"{error} (the user may not read the security configuration: it needs READ on CONFIG security)"
    if isinstance(error, CertificateNotTrusted):
        return f"{error} (check --ca-bundle)"
    if error.status is None:
        return f"{error} (is the URL right, and is the target running?)"
    return str(error)
