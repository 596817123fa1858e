"""``druid-access run``: load the configuration, connect, and run kopf until a signal.

kopf installs SIGINT/SIGTERM handlers and finishes in-flight handlers before returning;
the clients are closed afterwards, so a shutdown never cuts a remote write in half.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import start_http_server

from druid_access import config as config_module
from druid_access.handlers import App, configure, register
from druid_access.kube import Kube
from druid_access.reconcile import Engine
from druid_access.targets import Targets

log = logging.getLogger("druid_access.runner")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # kubernetes-asyncio and aiohttp log request details at DEBUG; never let them.
    for noisy in ("kubernetes_asyncio", "aiohttp", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # kopf reports every handler call at INFO; what changed is logged by the reconciler.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if verbose else logging.WARNING)


async def run(
    *,
    config_path: Path,
    namespaces: Sequence[str],
    all_namespaces: bool,
    health: str | None,
    metrics_port: int | None,
    metrics_address: str = "0.0.0.0",  # noqa: S104 - scraped from outside the pod
) -> int:
    cfg = config_module.load(config_path)
    kube = await Kube.connect()
    targets = Targets(cfg, kube)
    app = App(Engine(targets, kube))
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: object) -> None:
        configure(settings)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a pod: the ServiceAccount token; elsewhere: KUBECONFIG (as kubectl would).
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    register(registry, app)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_address)
    log.info(
        "starting: %d Druid cluster(s), %d Pivot instance(s), watching %s",
        len(cfg.clusters),
        len(cfg.pivots),
        "all namespaces" if all_namespaces else ", ".join(namespaces),
    )
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=all_namespaces,
            namespaces=list(namespaces),
            liveness_endpoint=health,
            standalone=True,
        )
    finally:
        await targets.close()
        await kube.close()
    log.info("stopped")
    return 0


def main(
    *,
    config_path: Path,
    namespaces: Sequence[str],
    all_namespaces: bool,
    health: str | None,
    metrics_port: int | None,
    verbose: bool = False,
) -> int:
    setup_logging(verbose)
    try:
        config_module.load(config_path)
    except config_module.ConfigError as error:
        log.error("%s", error)
        return 2
    return asyncio.run(
        run(
            config_path=config_path,
            namespaces=namespaces,
            all_namespaces=all_namespaces,
            health=health,
            metrics_port=metrics_port,
        )
    )
