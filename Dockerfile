# thumbd: a self-hosted server speaking Qencode's transcoding API for video
# thumbnails, with ffmpeg inside.
#   docker build -t thumbd .
#   docker run --rm -p 8080:8080 -v thumbd-data:/var/lib/thumbd thumbd
# See docker-compose.yml for thumbd next to an S3-compatible store.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not refetch modules.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/thumbd ./cmd/thumbd

FROM debian:bookworm-slim
# ffmpeg/ffprobe do the work; ca-certificates for https sources and S3;
# curl for the HEALTHCHECK.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ffmpeg ca-certificates curl \
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
USER thumbd
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
	CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/thumbd"]
