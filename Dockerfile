# signalhub services image: one image, the command picks the service (`signalhub enforcer`,
# `signalhub serve`). Installs exactly like `make install`, without the dev extras.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SIGNALHUB_HOME=/app

WORKDIR /app

COPY pyproject.toml README.md requirements-opa.txt ./
COPY services ./services
RUN pip install . \
    # The OPA engine wheel claims Python>=3.14 but is a ctypes wrapper that works on 3.11:
    # pinned by hash, installed without its Requires-Python check (as in the Makefile).
    && pip install --ignore-requires-python --no-deps --require-hashes -r requirements-opa.txt

# The data model and the rules, read at start-up from SIGNALHUB_HOME.
COPY schemas ./schemas
COPY policies ./policies
COPY connectors ./connectors
COPY config ./config

RUN groupadd --system --gid 10001 signalhub \
    && useradd --system --uid 10001 --gid signalhub --home-dir /var/lib/signalhub \
       --shell /usr/sbin/nologin signalhub \
    && install -d -o signalhub -g signalhub -m 0700 /var/lib/signalhub

USER 10001:10001
ENV SIGNALHUB_STATE_DIR=/var/lib/signalhub
EXPOSE 8730

ENTRYPOINT []
CMD ["signalhub", "--help"]
