# syntax=docker/dockerfile:1
#
# namespace-scheduler container image.
#
#   docker build -t namespace-scheduler:local .
#
# Stage 1 builds a fully static x86_64 musl release binary; stage 2 copies it onto
# distroless/static (CA certificates, /etc/passwd entry for 65532, no shell, no
# package manager). The binary needs no tzdata (chrono-tz is compiled in) and no
# writable filesystem, so the pod runs with readOnlyRootFilesystem.

ARG RUST_VERSION=1.95

############################ builder ############################
FROM rust:${RUST_VERSION}-bookworm AS builder

ARG TARGET=x86_64-unknown-linux-musl
# musl-tools provides musl-gcc for the C parts of the TLS stack (aws-lc-sys, ring);
# cmake is aws-lc-sys's fallback build path.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools cmake \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"

ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=+crt-static"

WORKDIR /build

# --- dependency layer: only the manifests, with empty stand-in sources. ---
# This layer is rebuilt only when Cargo.toml / Cargo.lock change, not on every
# source edit. Every workspace member's manifest must be copied here.
COPY Cargo.toml Cargo.lock ./
COPY standin/Cargo.toml standin/Cargo.toml
RUN mkdir -p src standin/src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > standin/src/main.rs \
 && touch standin/src/lib.rs \
 && cargo build --release --locked --target "${TARGET}" \
      --package namespace-scheduler --bin namespace-scheduler \
 && rm -rf src standin/src \
           target/"${TARGET}"/release/namespace-scheduler* \
           target/"${TARGET}"/release/deps/namespace_scheduler-* \
           target/"${TARGET}"/release/deps/libnamespace_scheduler-* \
           target/"${TARGET}"/release/.fingerprint/namespace-scheduler-*

# --- application layer ---
COPY src src
COPY standin/src standin/src
# compiled in (include_str!) by src/dynamo.rs: the table schema for local tables
COPY infrastructure/dynamodb-tables.yaml infrastructure/dynamodb-tables.yaml
# touch: COPY keeps the sources' mtimes, which may be older than the dummy build.
# The last checks fail the build if the binary is not static (distroless/static
# has no libc) or does not start.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --target "${TARGET}" \
      --package namespace-scheduler --bin namespace-scheduler \
 && cp target/"${TARGET}"/release/namespace-scheduler /namespace-scheduler \
 && ! ldd /namespace-scheduler 2>/dev/null | grep -q '=>' \
 && /namespace-scheduler --help > /dev/null \
 && ls -l /namespace-scheduler

############################ runtime ############################
# distroless/static: CA certificates, tzdata, nonroot user 65532, no shell.
FROM gcr.io/distroless/static-debian12:nonroot AS runtime

LABEL org.opencontainers.image.title="namespace-scheduler" \
      org.opencontainers.image.description="Scales non-production Kubernetes namespaces down outside business hours, with a DynamoDB audit trail" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder --chown=0:0 --chmod=0555 /namespace-scheduler /usr/local/bin/namespace-scheduler

USER 65532:65532

ENTRYPOINT ["/usr/local/bin/namespace-scheduler"]
CMD ["run"]
