# syntax=docker/dockerfile:1
# canary-pilot image: the daemon, the CLI and the demo backend in one binary.
#
# This is how users build the image, from source (a Rust toolchain image, then Debian slim).
# scripts/swarm-images.sh is something else: it packs binaries already built on a machine without
# a registry (our test machines) into FROM-scratch images for tests/swarm/run.sh.
#
#   docker build -t canary-pilot:latest .
#   docker run --rm -p 9000:9000 -v "$PWD/my.toml:/etc/canary-pilot/canary-pilot.toml:ro" \
#     -v canary-pilot-state:/var/lib/canary-pilot canary-pilot:latest
#
# The config is not baked in: mount it at /etc/canary-pilot/canary-pilot.toml (the Swarm stack
# does it with a Docker config) with server.listen = "0.0.0.0:9000" and state_file under
# /var/lib/canary-pilot.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY examples ./examples
# Cache mounts keep the registry and the target directory between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -D -m 0755 target/release/canary-pilot /out/canary-pilot

FROM debian:bookworm-slim
# ca-certificates for https metrics sources and slots; curl for the container health checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# A fixed non-root uid: the state directory is created owned by it, and Docker copies that
# ownership into a new named volume mounted there.
RUN groupadd --system --gid 10001 canary-pilot \
 && useradd --system --uid 10001 --gid canary-pilot --home-dir /var/lib/canary-pilot \
      --no-create-home --shell /usr/sbin/nologin canary-pilot \
 && install -d -o canary-pilot -g canary-pilot -m 0750 /var/lib/canary-pilot \
 && install -d -m 0755 /etc/canary-pilot
COPY --from=build /out/canary-pilot /usr/local/bin/canary-pilot
USER 10001:10001
WORKDIR /var/lib/canary-pilot
EXPOSE 9000
# Readiness, not liveness: ready once the state is loaded and can be written.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9000/readyz"]
ENTRYPOINT ["canary-pilot"]
CMD ["serve", "--config", "/etc/canary-pilot/canary-pilot.toml"]
