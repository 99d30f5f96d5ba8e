# The one inferbench image: the load engine (`inferbench load`) and the simulated model server
# (`inferbench sim`) in benchmark pods, and `inferbench run` itself if it runs in a cluster.
# Build: docker build -t REGISTRY/inferbench:$(git describe --always) .
# Use:   inferbench run --platform kube --image REGISTRY/inferbench:TAG …  (or INFERBENCH_IMAGE)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin inferbench

FROM debian:bookworm-slim
# ca-certificates: HTTPS to Hugging Face (tokenizers) and GCS. Nothing else is needed at run time.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/inferbench /usr/local/bin/inferbench
# The hardware table is built into the binary; exec commands (`inferbench results pack`, the
# load pod's readiness probe) find it on PATH.
USER 65532:65532
ENTRYPOINT ["inferbench"]
