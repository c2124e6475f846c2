# Two images from this file (deploy/README.md, "Images"):
#   docker build --target service -t commerce-mesh .        every commerce-mesh process (the default)
#   docker build --target edge    -t commerce-mesh-edge .   the same plus the envoy binary, for Envoy only
# Dependencies come from hashed lock files (make lock): a build installs exactly the reviewed files.
# The base image is pinned by tag; deploy/README.md shows how to pin it by digest when you build.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    COMMERCE_HOST=0.0.0.0 COMMERCE_LOG_FORMAT=json
WORKDIR /app
# Run-time dependencies only: no test, lint, fuzz, benchmark or deployment-check tools.
COPY requirements-runtime.lock .
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-runtime.lock
COPY proto ./proto
COPY gen ./gen
COPY services ./services
COPY scripts ./scripts
# The generated stubs as the pip package integrators install (gen/python), then /app on the path.
RUN pip install --no-cache-dir --no-deps ./gen/python \
 && printf '/app\n' > "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/commerce_mesh.pth" \
 && groupadd --gid 10001 commerce \
 && useradd --uid 10001 --gid 10001 --no-create-home commerce && mkdir -p /keys && chown commerce /keys

# The edge: the service image plus Envoy (about 100 MB that no other process needs).
FROM base AS edge
COPY requirements-edge.lock .
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-edge.lock
# Numeric, so Kubernetes' runAsNonRoot can check it without looking the name up.
USER 10001:10001
HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9901/ready', timeout=2)"]
CMD ["sh", "-c", "python -m services.edge.render --out /tmp/envoy.yaml && exec envoy -c /tmp/envoy.yaml --log-level warn"]

# Every other process (last, so a plain `docker build .` makes this one).
# Its health check depends on the process (docker-compose.yml gives each one).
FROM base AS service
USER 10001:10001
CMD ["python", "-m", "services.meshinfo"]
