# One image for every role: datastream up | api | ingestor | generator | broker | migrate.
# syntax=docker/dockerfile:1

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin datastream \
 && cp target/release/datastream /usr/local/bin/datastream

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/datastream --create-home datastream
COPY --from=build /usr/local/bin/datastream /usr/local/bin/datastream
USER datastream
WORKDIR /var/lib/datastream
# Listen on all interfaces inside the container; publish ports explicitly.
ENV API_LISTEN=0.0.0.0:8080 \
    INGEST_LISTEN=0.0.0.0:8082 \
    GENERATOR_LISTEN=0.0.0.0:8081 \
    MQTT_LISTEN=0.0.0.0:1883 \
    GRPC_LISTEN=0.0.0.0:50051 \
    GRPC_HEALTH_LISTEN=0.0.0.0:8084 \
    DATABASE_URL=sqlite:///var/lib/datastream/datastream.db
EXPOSE 8080 8082 1883 50051 8084
# /healthz answers on the API port (api, up), INGEST_LISTEN (ingestor) or
# GRPC_HEALTH_LISTEN (grpc);
# compose overrides the check per role.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:8080/healthz" || exit 1
ENTRYPOINT ["datastream"]
CMD ["up"]
