# syntax=docker/dockerfile:1
# Multi-stage build of the `sluice` binary into a distroless, non-root image.
#   docker build -t sluice:dev .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY deploy ./deploy
RUN cargo build --release --locked && strip target/release/sluice

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sluice"]
