# osctl: `osctl serve`, configured by OSCTL_* environment variables (secrets as *_FILE), with
# pt-online-schema-change (Debian percona-toolkit) and an optional gh-ost binary.
#
#   docker build -t osctl .
#   docker build -t osctl --build-arg GH_OST_BIN_PATH=vendor/gh-ost .      # bake in gh-ost
#   docker build -t osctl --build-arg BASE_IMAGE=local/bookworm-python .   # no registry at hand
#
#   docker run --read-only -v osctl-state:/var/lib/osctl --tmpfs /tmp -p 8080:8080 \
#     -e OSCTL_TARGET_APP_FILE=/run/secrets/app-dsn -v "$PWD/app-dsn:/run/secrets/app-dsn:ro" osctl
#
# BASE_IMAGE: Debian bookworm with Python 3.11 as `python3`, its venv module and apt sources: the
# official python:3.11-slim-bookworm, or an image imported from a debootstrap root filesystem with
# python3 and python3-venv (what tests/deploy/test_image.py uses where no registry is reachable).
#
# gh-ost is in neither Debian nor PyPI. Two slots, both ending in GH_OST_BIN naming the binary:
#   build: --build-arg GH_OST_BIN_PATH=<path inside the build context>, installed as /opt/gh-ost/gh-ost;
#   run:   mount a binary anywhere and set GH_OST_BIN to its path (the Helm chart: ghOst.binPath).

ARG BASE_IMAGE=python:3.11-slim-bookworm

# -- builder: the project and its dependencies as wheels, installed into a virtualenv -------------
FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# A private package index, or egress through a TLS-intercepting proxy (its CA in the base image's
# trust store): --build-arg PIP_INDEX_URL=... / --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt.
# Builder-stage arguments stay out of the final image and its history.
ARG PIP_INDEX_URL
ARG PIP_CERT
WORKDIR /src
RUN python3 -m venv /opt/osctl
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY adapters ./adapters
RUN /opt/osctl/bin/pip wheel --wheel-dir /wheels . \
 && /opt/osctl/bin/pip install --no-index --find-links /wheels osctl \
 && /opt/osctl/bin/osctl schema > /dev/null

# The optional gh-ost binary. Without GH_OST_BIN_PATH this copies pyproject.toml (always present)
# and throws it away, leaving /opt/gh-ost empty.
ARG GH_OST_BIN_PATH=""
COPY ${GH_OST_BIN_PATH:-pyproject.toml} /tmp/gh-ost.candidate
RUN mkdir -p /opt/gh-ost \
 && if [ -n "${GH_OST_BIN_PATH}" ]; then \
      install -m 0755 /tmp/gh-ost.candidate /opt/gh-ost/gh-ost; \
    fi \
 && rm -f /tmp/gh-ost.candidate

# -- runtime ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

# pt-online-schema-change and its Perl MySQL driver. gdb-minimal satisfies percona-toolkit's gdb
# dependency without full gdb and its Python.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates percona-toolkit libdbd-mysql-perl libdbi-perl gdb-minimal \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && perl -MDBI -MDBD::mysql -e 1 \
 && pt-online-schema-change --version

# uid/gid 10001: matches the Helm chart's runAsUser/fsGroup. /var/lib/osctl holds the embedded
# state store and is the home directory; with a read-only root filesystem it and /tmp are volumes.
RUN groupadd --system --gid 10001 osctl \
 && useradd --system --uid 10001 --gid osctl --home-dir /var/lib/osctl --no-create-home \
      --shell /usr/sbin/nologin osctl \
 && install -d -o osctl -g osctl -m 0750 /var/lib/osctl

COPY --from=builder /opt/osctl /opt/osctl
COPY --from=builder /opt/gh-ost /opt/gh-ost
# The rollback runbooks `osctl serve` validates at start-up (OSCTL_RUNBOOKS_DIR below; mount your own
# directory and point it there to change them). Checked here too: a bad one fails the build.
COPY runbooks /opt/osctl/runbooks
RUN /opt/osctl/bin/osctl runbook list --dir /opt/osctl/runbooks > /dev/null

ARG GH_OST_BIN_PATH=""
ENV PATH=/opt/osctl/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/osctl \
    OSCTL_HOST=0.0.0.0 \
    OSCTL_PORT=8080 \
    OSCTL_STATE_URL=sqlite+aiosqlite:////var/lib/osctl/state.db \
    GH_OST_BIN=${GH_OST_BIN_PATH:+/opt/gh-ost/gh-ost} \
    OSCTL_RUNBOOKS_DIR=/opt/osctl/runbooks

WORKDIR /var/lib/osctl
VOLUME ["/tmp", "/var/lib/osctl"]
USER 10001:10001
EXPOSE 8080

# No curl in the image: Python asks /healthz on the configured port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/opt/osctl/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('OSCTL_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["osctl"]
CMD ["serve"]
