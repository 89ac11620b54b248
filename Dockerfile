# thumbd: a self-hosted server speaking Qencode's transcoding API for video
# thumbnails, with ffmpeg inside.
#   docker build -t thumbd .
#   docker run --rm -p 8080:8080 -v thumbd-data:/var/lib/thumbd thumbd
# It runs as uid 10001: a host folder mounted on /var/lib/thumbd must belong
# to it (sudo chown -R 10001:10001 ./data), or thumbd exits with
# "permission denied".
# See docker-compose.yml for thumbd next to an S3-compatible store.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not refetch modules.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/thumbd ./cmd/thumbd

FROM debian:bookworm-slim
# ffmpeg/ffprobe do the work; ca-certificates for https sources and S3.
# No curl: the HEALTHCHECK runs `thumbd healthcheck`.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ffmpeg ca-certificates \
	&& rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 thumbd \
	&& useradd --system --uid 10001 --gid thumbd --home-dir /var/lib/thumbd \
		--no-create-home --shell /usr/sbin/nologin thumbd \
	&& install -d -o thumbd -g thumbd -m 0750 /var/lib/thumbd
COPY --from=build /out/thumbd /usr/local/bin/thumbd

ENV THUMBD_ADDR=0.0.0.0:8080 \
	THUMBD_DATA_DIR=/var/lib/thumbd
VOLUME ["/var/lib/thumbd"]
EXPOSE 8080
USER 10001:10001
# `thumbd healthcheck` GETs /readyz at THUMBD_ADDR's port on loopback and
# exits 0 when thumbd is ready (ffmpeg found, data directory writable).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
	CMD ["/usr/local/bin/thumbd", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/thumbd"]
