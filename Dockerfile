# Tessera in two stages: build with the Swift toolchain, run on a slim Debian as a non-root user.
# (Not built on the project's own machines, which run no Docker engine; see docs/DEPLOY.md.)
#
#   docker build -t tessera .
#   docker run -p 8080:8080 -v tessera-data:/var/lib/tessera tessera
FROM swift:6.2-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libsqlite3-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that a source change does not refetch them.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests/Support ./Tests/Support
RUN swift build -c release --product tessera --static-swift-stdlib \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/tessera" /out/tessera

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsqlite3-0 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system tessera \
    && useradd --system --gid tessera --home-dir /var/lib/tessera --shell /usr/sbin/nologin tessera \
    && install -d -o tessera -g tessera -m 0700 /var/lib/tessera
COPY --from=build /out/tessera /usr/local/bin/tessera
USER tessera
WORKDIR /var/lib/tessera
ENV TESSERA_HOST=0.0.0.0 \
    TESSERA_PORT=8080 \
    TESSERA_DATABASE_URL=sqlite:/var/lib/tessera/tessera.db
VOLUME /var/lib/tessera
EXPOSE 8080
# Liveness only: /health/live touches no store, so a Redis outage does not restart the container.
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health/live || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["serve"]
