# syntax=docker/dockerfile:1
# An exact release of the base (Python patch and Debian), changed on purpose and tested. To pin it
# byte for byte, append the digest that `docker buildx imagetools inspect <image>` prints.
ARG PYTHON_IMAGE=python:3.11.17-slim-bookworm

# Build the wheel with the locked setuptools: what pyproject.toml ships is what tests checked.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements-build.lock ./
RUN pip install --require-hashes -r requirements-build.lock
COPY . .
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Dependencies first, so their layer survives code changes: exactly the lock, every hash checked.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock
COPY --from=build /wheels /tmp/wheels
# The base image's own setuptools and wheel are not used at run time.
RUN pip install --no-deps /tmp/wheels/esimbot-*.whl && rm -rf /tmp/wheels \
    && pip uninstall --yes setuptools wheel
RUN useradd --create-home --uid 10001 esimbot && mkdir -p /app/data && chown -R esimbot /app
WORKDIR /app
USER esimbot
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"HTTP_PORT\", \"8080\")}/healthz', timeout=4)"
ENTRYPOINT ["esimbot"]
CMD ["run"]
