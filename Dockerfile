# Container image for whatsapp_exporter.
#
#   docker build -t whatsapp_exporter \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg BRANCH=$(git rev-parse --abbrev-ref HEAD) .
#   docker run -p 10040:10040 \
#     -v $PWD/whatsapp_exporter.yml:/etc/whatsapp_exporter/whatsapp_exporter.yml:ro \
#     whatsapp_exporter
#   docker run -p 10040:10040 whatsapp_exporter --demo    # no account needed
#
# Builds with Docker (BuildKit, the default builder since Docker 23), podman
# and buildah. The RUN --mount cache mounts below need BuildKit or buildah;
# the legacy Docker builder (DOCKER_BUILDKIT=0) rejects them.
# scripts/image-test.sh builds this file with buildah against locally
# assembled stand-ins for both base images, for linux/amd64 and linux/arm64,
# runs the host's and checks the other without running it. Older buildah
# (1.28, Debian 12's) sets TARGETOS and TARGETARCH from --platform but leaves
# BUILDPLATFORM empty; pass it:
#   buildah bud --platform linux/arm64 --build-arg BUILDPLATFORM=linux/amd64 .

# The build image: any image with a Go toolchain at least as new as go.mod's
# "go" line on its PATH and a POSIX sh.
ARG GO_IMAGE=golang:1.26-bookworm
# The runtime image: distroless "static" has no shell and no package manager,
# only what a static Go binary needs: the CA bundle
# (/etc/ssl/certs/ca-certificates.crt, for the provider APIs' HTTPS),
# /etc/passwd with the user nonroot (65532), /etc/nsswitch.conf, tzdata and a
# writable /tmp. The :nonroot tag already runs as 65532; USER below says so
# again so that other bases work too. Any base with the same files will do,
# e.g. alpine after `apk add ca-certificates` and `adduser -u 65532`.
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

# The build stage runs on the build machine's platform and cross-compiles for
# the target one (docker buildx build --platform linux/arm64,linux/amd64 .).
FROM --platform=${BUILDPLATFORM} ${GO_IMAGE} AS build
ARG TARGETOS
ARG TARGETARCH

# Go settings that the build may need from outside, e.g. a module mirror:
#   --build-arg GOPROXY=https://goproxy.example,direct
# Empty means Go's defaults.
ARG GOPROXY
ARG GOSUMDB
ARG GOPRIVATE
# Fixed cache paths, so the cache mounts below hit whatever base is used.
ENV CGO_ENABLED=0 \
    GOMODCACHE=/go/pkg/mod \
    GOCACHE=/root/.cache/go-build

WORKDIR /src

# Dependencies first, into the module cache mount; with layer caching this
# step runs again only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,id=whatsapp_exporter-gomod,target=/go/pkg/mod \
    go mod download

COPY . .

# Stamped into --version, the startup log and whatsapp_exporter_build_info.
# Values must not contain spaces (BUILD_DATE e.g. $(date -u +%Y%m%d-%H:%M:%S)).
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_USER=container
ARG BUILD_DATE=unknown
RUN --mount=type=cache,id=whatsapp_exporter-gomod,target=/go/pkg/mod \
    --mount=type=cache,id=whatsapp_exporter-gobuild,target=/root/.cache/go-build \
    pkg=github.com/prometheus/common/version && \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -buildvcs=false \
      -ldflags "-s -w \
        -X ${pkg}.Version=${VERSION} \
        -X ${pkg}.Revision=${REVISION} \
        -X ${pkg}.Branch=${BRANCH} \
        -X ${pkg}.BuildUser=${BUILD_USER} \
        -X ${pkg}.BuildDate=${BUILD_DATE}" \
      -o /out/whatsapp_exporter .

FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="whatsapp_exporter" \
      org.opencontainers.image.description="Prometheus exporter for the state of WhatsApp API instances" \
      org.opencontainers.image.source="https://github.com/whatsapp-exporter/whatsapp_exporter"

COPY --from=build /out/whatsapp_exporter /bin/whatsapp_exporter

# Numeric, so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
USER 65532:65532
EXPOSE 10040
ENTRYPOINT ["/bin/whatsapp_exporter"]
CMD ["--config.file=/etc/whatsapp_exporter/whatsapp_exporter.yml"]
