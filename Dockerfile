# syntax=docker/dockerfile:1
# Build a static outbox-relay binary, then ship it alone on a distroless
# base as a non-root user.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/outbox-relay ./cmd/outbox-relay

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/outbox-relay /usr/local/bin/outbox-relay
USER nonroot:nonroot
# Admin server: /metrics, /healthz, /readyz (RELAY_ADMIN_ADDR, default :9090; off disables).
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/outbox-relay"]
CMD ["relay"]
