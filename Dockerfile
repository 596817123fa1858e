# The operator image: the package installed from its wheel into a virtualenv, on a pinned
# slim Python, running as a non-root user with nothing else. Build with `make image`.
# The test servers (the druid-access-testing distribution, testing/) are not in it: they have
# their own target, `testing` (`make testing-image`), which `make kind-e2e` runs in the cluster.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m pip install --no-cache-dir build==1.3.0 \
 && python -m build --wheel --outdir /dist \
 && python -m venv /opt/druid-access \
 && /opt/druid-access/bin/pip install --no-cache-dir /dist/*.whl

# The fake Coordinator and fake Pivot (`druid-access-testing fake-coordinator|fake-pivot`): the
# operator's wheel and the testing wheel in their own virtualenv. Only with --target testing.
FROM ${PYTHON_IMAGE} AS build-testing
WORKDIR /src
COPY --from=build /dist /dist
COPY testing ./testing
RUN python -m pip install --no-cache-dir build==1.3.0 \
 && python -m build --wheel --outdir /dist-testing testing \
 && python -m venv /opt/druid-access-testing \
 && /opt/druid-access-testing/bin/pip install --no-cache-dir /dist/*.whl /dist-testing/*.whl

FROM ${PYTHON_IMAGE} AS testing
COPY --from=build-testing /opt/druid-access-testing /opt/druid-access-testing
ENV PATH=/opt/druid-access-testing/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["druid-access-testing"]

# The operator: the last stage, what `docker build .` (make image) builds.
FROM ${PYTHON_IMAGE}
COPY --from=build /opt/druid-access /opt/druid-access
ENV PATH=/opt/druid-access/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
# The Deployment (helm/druid-access-operator/templates/deployment.yaml) passes
# `run --config=... --all-namespaces|--namespace=...` as args to this entry point.
ENTRYPOINT ["druid-access"]
CMD ["run", "--config=/etc/druid-access/config.yaml", "--all-namespaces"]
