# authstat container image: docker build -t authstat:0.1.0 .
FROM rust:1.88-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev libmariadb-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p authstat --features all-backends

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 libmariadb3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 authstat
COPY --from=build /src/target/release/authstat /usr/local/bin/authstat
USER authstat
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/authstat"]
CMD ["run", "--config", "/etc/authstat/authstat.yaml"]
