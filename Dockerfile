# syntax=docker/dockerfile:1
#
# Tempora server image.
#
#   docker build -t tempora .
#   docker run -d -p 5432:5432 -e TEMPORA_PASSWORD=secret -v tempora-data:/var/lib/tempora tempora
#
# On a fresh data directory the server refuses to start unless the superuser
# gets a password (TEMPORA_PASSWORD) or loopback clients are trusted
# (TEMPORA_TRUST_LOOPBACK=true), so pass one of them at run time: the image
# bakes in no password. Other settings: TEMPORA_PORT, TEMPORA_LOG_LEVEL,
# TEMPORA_SUPERUSER, TEMPORA_AUTH_METHOD (scram-sha-256 or md5),
# TEMPORA_TLS_CERT / TEMPORA_TLS_KEY (PEM files, e.g. mounted read-only).

# ---------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

WORKDIR /src
COPY . .

# The registry and target directories are BuildKit cache mounts, so they are
# not part of the layer: the binary is copied out within the same RUN.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release -p tempora-server --locked \
    && install -D -m 0755 target/release/tempora /out/tempora

# ---------------------------------------------------------------------------
# Runtime stage
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates for TLS; postgresql-client for pg_isready (health check)
# and psql (docker exec -it <container> psql -h 127.0.0.1 -U postgres).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates \
        postgresql-client \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid (10001), so a bind-mounted data directory can be chowned to it.
RUN groupadd --gid 10001 tempora \
    && useradd --uid 10001 --gid tempora --no-create-home --home-dir /var/lib/tempora --shell /usr/sbin/nologin tempora \
    && install -d -o tempora -g tempora -m 0700 /var/lib/tempora

COPY --from=builder /out/tempora /usr/local/bin/tempora

ENV TEMPORA_HOST=0.0.0.0 \
    TEMPORA_PORT=5432 \
    TEMPORA_DATA_DIR=/var/lib/tempora \
    TEMPORA_LOG_LEVEL=info

# A new named volume takes this directory's owner (tempora); a bind-mounted
# host directory must be writable by uid 10001.
VOLUME ["/var/lib/tempora"]
EXPOSE 5432

USER tempora
WORKDIR /var/lib/tempora

# pg_isready only checks that the server accepts connections; it needs no
# password. (Shell form, so a TEMPORA_PORT / TEMPORA_SUPERUSER given at run
# time is honoured; the defaults give pg_isready -h 127.0.0.1 -p 5432 -U postgres.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD pg_isready -h 127.0.0.1 -p "${TEMPORA_PORT:-5432}" -U "${TEMPORA_SUPERUSER:-postgres}" || exit 1

# SIGTERM (docker stop) makes the server flush and shut down cleanly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tempora"]
