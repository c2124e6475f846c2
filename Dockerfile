# One image for every commerce-mesh process; the command picks the service.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    COMMERCE_HOST=0.0.0.0 COMMERCE_LOG_FORMAT=json
WORKDIR /app
# Run-time dependencies only: no test, lint, fuzz, benchmark or deployment-check tools.
COPY requirements-runtime.txt .
RUN pip install --no-cache-dir -r requirements-runtime.txt
COPY proto ./proto
COPY gen ./gen
COPY services ./services
COPY scripts ./scripts
# The generated stubs as the pip package integrators install (gen/python), then /app on the path.
RUN pip install --no-cache-dir --no-deps ./gen/python \
 && printf '/app\n' > "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/commerce_mesh.pth" \
 && groupadd --gid 10001 commerce \
 && useradd --uid 10001 --gid 10001 --no-create-home commerce && mkdir -p /keys && chown commerce /keys
# Numeric, so Kubernetes' runAsNonRoot can check it without looking the name up.
USER 10001:10001
CMD ["python", "-m", "services.meshinfo"]
