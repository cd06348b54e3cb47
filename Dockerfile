# touchpoint in a container: build the release binary, then run it as a non-root user on a
# slim base. Configuration and data are mounted:
#
#   docker build -t touchpoint .
#   docker run -d --name touchpoint -p 8080:8080 \
#     -v /srv/touchpoint/config:/etc/touchpoint:ro \
#     -v /srv/touchpoint/data:/var/lib/touchpoint \
#     -e TOUCHPOINT_SOURCE_TOKEN -e TOUCHPOINT_LINK_SECRET \
#     -e TOUCHPOINT_SMTP_USERNAME -e TOUCHPOINT_SMTP_PASSWORD \
#     touchpoint
#
# `docker stop` sends SIGTERM; give it more time than daemon.shutdown_deadline_secs
# (`docker stop -t 45`, or stop_grace_period in compose).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
# The email and page templates are compiled into the binary (include_str!).
COPY templates ./templates
RUN cargo build --release --locked --bin touchpoint

FROM debian:bookworm-slim
# ca-certificates for HTTPS to the CRM; sqlite3 for online backups (`sqlite3 ... .backup`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates sqlite3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 touchpoint \
    && useradd --system --uid 10001 --gid touchpoint --home-dir /var/lib/touchpoint \
        --shell /usr/sbin/nologin touchpoint \
    && mkdir -p /etc/touchpoint /var/lib/touchpoint \
    && chown touchpoint:touchpoint /var/lib/touchpoint
COPY --from=build /src/target/release/touchpoint /usr/local/bin/touchpoint

USER touchpoint:touchpoint
WORKDIR /var/lib/touchpoint
VOLUME ["/var/lib/touchpoint"]
# The container's port must be reachable from outside it; the store lives on the volume.
ENV TOUCHPOINT__HTTP__LISTEN=0.0.0.0:8080 \
    TOUCHPOINT__STORE__PATH=/var/lib/touchpoint/touchpoint.db \
    TOUCHPOINT__LOG__FORMAT=json
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/touchpoint"]
CMD ["run", "--config", "/etc/touchpoint/production.toml"]
