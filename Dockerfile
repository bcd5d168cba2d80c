# syntax=docker/dockerfile:1
#
# Microcosm's container images: one multi-stage build, one final stage per binary.
#
#   docker build --target order -t microcosm/order .          # one image
#   docker compose build                                      # all four, as compose names them
#   docker buildx build --platform linux/amd64,linux/arm64 \
#       --target order -t microcosm/order .                   # both architectures, no edits
#
# Stages:
#   chef      the pinned Rust toolchain, musl-tools and the platform's musl target,
#             and cargo-chef
#   planner   reduces the workspace to a recipe: its manifests and Cargo.lock
#   builder   builds the dependencies from the recipe first (a layer that changes only
#             when a manifest or Cargo.lock does, so editing code rebuilds only our
#             crates), then the four binaries in release mode: static (musl, with
#             mimalloc as the allocator), stripped
#   order, inventory, billing, cli
#             distroless/static (CA certificates, /etc/passwd with the nonroot user,
#             no libc, no shell, no package manager) plus one binary
#
# No protoc anywhere: crates/proto compiles proto/ with protox inside build.rs.
# Each service image checks itself with its own binary (`<service> healthcheck`: a
# grpc.health.v1 call to its own port), so no probe binary is downloaded.
# buildx builds each platform natively (or under QEMU): the musl target is the
# building machine's own architecture, so no cross toolchain is involved.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# musl-gcc compiles ring's C and assembly for the static target.
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
    && rm -rf /var/lib/apt/lists/*
RUN rustup target add "$(uname -m)-unknown-linux-musl" \
    && cargo install cargo-chef --locked --version 0.1.73
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CC_aarch64_unknown_linux_musl=musl-gcc
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --target "$(uname -m)-unknown-linux-musl" \
        --recipe-path recipe.json
COPY . .
RUN target="$(uname -m)-unknown-linux-musl" \
    && cargo build --release --locked --target "$target" \
        --package order-service --package inventory-service \
        --package billing-service --package microcosm-cli \
    && mkdir -p /out \
    && cp "target/$target/release/order-service" "target/$target/release/inventory-service" \
          "target/$target/release/billing-service" "target/$target/release/microcosm" /out/

# The common runtime: CA certificates and the nonroot user (65532); the binaries
# are static, so no libc.
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
# Set by whoever publishes the images: docker build --build-arg REVISION=$(git rev-parse HEAD) ...
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.vendor="Microcosm" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# distroless's nonroot user and group.
USER 65532:65532

FROM runtime AS order
LABEL org.opencontainers.image.title="microcosm-order" \
      org.opencontainers.image.description="Microcosm's order service: places orders and orchestrates the order saga"
COPY --from=builder /out/order-service /usr/local/bin/order-service
EXPOSE 50051
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/order-service", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/order-service"]

FROM runtime AS inventory
LABEL org.opencontainers.image.title="microcosm-inventory" \
      org.opencontainers.image.description="Microcosm's inventory service: products, stock and reservations"
COPY --from=builder /out/inventory-service /usr/local/bin/inventory-service
EXPOSE 50052
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/inventory-service", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/inventory-service"]

FROM runtime AS billing
LABEL org.opencontainers.image.title="microcosm-billing" \
      org.opencontainers.image.description="Microcosm's billing service: accounts, payments and the ledger"
COPY --from=builder /out/billing-service /usr/local/bin/billing-service
EXPOSE 50053
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/billing-service", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/billing-service"]

# The command line, for driving the sandbox from a container (compose's seed job,
# the loadgen profile, `docker compose run --rm cli order list`).
FROM runtime AS cli
LABEL org.opencontainers.image.title="microcosm-cli" \
      org.opencontainers.image.description="The microcosm command: place and inspect orders, flip fault flags, audit, load"
COPY --from=builder /out/microcosm /usr/local/bin/microcosm
ENTRYPOINT ["/usr/local/bin/microcosm"]
