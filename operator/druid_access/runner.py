"""``druid-access run``: load the configuration, connect, and run kopf until a signal.

On SIGINT or SIGTERM kopf stops its watches and runs the cleanup handler, which lets passes
in flight finish for up to ``loops.STOP_GRACE`` before cancelling them; the clients are
closed after that.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import kopf
from prometheus_client import REGISTRY, start_http_server

from druid_access import config as config_module
from druid_access import metrics
from druid_access.claims import Claims
from druid_access.handlers import configure, post_event, register
from druid_access.kube import Kube, KubeconfigError
from druid_access.passes import App, secret_changed
from druid_access.peering import follow
from druid_access.reconcile import Engine
from druid_access.secret_store import SecretStore
from druid_access.targets import Targets

log = logging.getLogger("druid_access.runner")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # The HTTP libraries log request details at DEBUG; never let them.
    for noisy in ("aiohttp", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # kopf reports every handler call at INFO; what changed is logged by the reconciler.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if verbose else logging.WARNING)


@dataclass(frozen=True)
class RunOptions:
    """What ``druid-access run`` was asked for (its flags)."""

    config_path: Path
    namespaces: Sequence[str]
    all_namespaces: bool
    health: str | None = None
    metrics_port: int | None = None
    peering: str | None = None
    priority: int | None = None


async def run(options: RunOptions) -> int:
    cfg = config_module.load(options.config_path)
    namespaces, all_namespaces, peering = options.namespaces, options.all_namespaces, options.peering
    priority = options.priority
    try:
        kube = await Kube.connect()
    except KubeconfigError as error:
        log.error("no usable Kubernetes credentials: %s", error)
        return 2
    targets = Targets(cfg, kube)
    secrets_store = SecretStore(kube, None if all_namespaces else list(namespaces))
    app = App(
        Engine(targets, kube, secrets_store, Claims(kube, cfg.namespace)),
        post_event,
        namespaces=None if all_namespaces else list(namespaces),
    )
    targets.on_health_change = lambda kind, name, up: app.loops.wake_for_target(kind, name)
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: object) -> None:
        configure(settings)
        # Watching named namespaces: watch exactly those. With scanning, kopf leaves out a namespace
        # that is already being deleted when it starts, so the resources there, waiting for their
        # finalizers, would never be released and the namespace would never go.
        settings.scanning.disabled = not all_namespaces

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a pod: the ServiceAccount token; elsewhere: KUBECONFIG (as kubectl would).
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    register(registry, app)
    if options.metrics_port is not None:
        REGISTRY.register(metrics.StateCollector(app.loops.by_reason, targets.up))
        start_http_server(options.metrics_port, addr="0.0.0.0")  # noqa: S104 - scraped from outside the pod
    if peering is not None and priority is None:
        # Replicas with equal priorities all freeze (kopf's rule); distinct random ones make
        # exactly one of them active and the others wait to take over.
        priority = secrets.randbelow(1_000_000) + 1
    log.info(
        "starting: %d Druid cluster(s), %d Pivot instance(s), watching %s, %s",
        len(cfg.clusters),
        len(cfg.pivots),
        "all namespaces" if all_namespaces else ", ".join(namespaces),
        f"peering {peering!r} with priority {priority}" if peering else "standalone",
    )
    # kopf's identity of this replica in the peering objects, chosen here so that this
    # replica can find itself there (peering.follow).
    identity = f"{os.environ.get('POD_ID') or socket.gethostname()}/{secrets.token_hex(4)}"
    tasks = [
        secrets_store.run(lambda ns, name: secret_changed(app, ns, name)),
        targets.credentials.run(lambda ns, name: log.debug("credential Secret %s/%s read", ns, name)),
        targets.warm_up(),
    ]
    if peering is not None and priority is not None:
        scopes = None if all_namespaces else list(namespaces)
        tasks.append(
            follow(
                kube,
                app.loops,
                name=peering,
                namespaces=scopes,
                identity=identity,
                priority=priority,
                catch_up=app.catch_up,
            )
        )
    watch = asyncio.gather(*tasks)
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=all_namespaces,
            namespaces=list(namespaces),
            liveness_endpoint=options.health,
            standalone=peering is None,
            peering_name=peering,
            priority=priority,
            identity=cast(Any, identity),
        )
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        await targets.close()
        await kube.close()
    log.info("stopped")
    return 0


def main(options: RunOptions, *, verbose: bool = False) -> int:
    setup_logging(verbose)
    try:
        config_module.load(options.config_path)
    except config_module.ConfigError as error:
        log.error("%s", error)
        return 2
    return asyncio.run(run(options))
