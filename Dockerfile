# The operator image: the package installed from its wheel into a virtualenv, on a pinned
# slim Python, running as a non-root user with nothing else. Build with `make image`.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m pip install --no-cache-dir build==1.3.0 \
 && python -m build --wheel --outdir /dist \
 && python -m venv /opt/druid-access \
 && /opt/druid-access/bin/pip install --no-cache-dir /dist/*.whl

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
