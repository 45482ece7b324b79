# One image for both roles: `spanflow manager` (the operator) and `spanflow ingest` (the workload).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/spanflow/spanflow/internal/version.Version=${VERSION}" \
      -o /out/spanflow .

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/spanflow /spanflow
USER 65532:65532
ENTRYPOINT ["/spanflow"]
