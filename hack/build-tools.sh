#!/usr/bin/env bash
# Builds, from source through the Go module proxy, every binary the tests and generators need:
#   bin/k8s/<version>-<os>-<arch>/  kube-apiserver, kubectl, etcd   (envtest's KUBEBUILDER_ASSETS),
#                                   kube-controller-manager (the e2e tests' real controllers)
#   bin/tools/                      controller-gen, helm, jaeger (Jaeger v2: the OTLP backend and
#                                   the real Kafka producer of the tests)
# Nothing here downloads prebuilt archives: setup-envtest's bucket is not reachable from our
# machines, so the control plane is compiled from k8s.io/kubernetes (hack/tools/k8s) and
# go.etcd.io/etcd (hack/tools/etcd), modules that exist only for this build; Jaeger v2 from
# github.com/jaegertracing/jaeger (hack/tools/jaeger) likewise.
#
# Idempotent: each binary has a stamp naming what it was built from; a binary whose stamp
# matches is skipped, so a warm run takes well under a second.
#
# Usage: hack/build-tools.sh [--print-assets]
#   --print-assets  print only the envtest assets folder (after building what is missing)
set -euo pipefail

K8S_VERSION=1.37.2
ETCD_VERSION=3.7.3
HELM_VERSION=v3.22.0
CONTROLLER_TOOLS_VERSION=v0.22.0
JAEGER_VERSION=v1.76.0

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
goos=$(go env GOOS)
goarch=$(go env GOARCH)
assets="$root/bin/k8s/${K8S_VERSION}-${goos}-${goarch}"
tools="$root/bin/tools"
quiet=false
[[ "${1:-}" == "--print-assets" ]] && quiet=true

log() { $quiet || echo "build-tools: $*" >&2; }
fail() { echo "build-tools: FAILED: $*" >&2; exit 1; }

command -v go >/dev/null || fail "go is not on PATH"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

# up_to_date NAME DIR STAMP: true when DIR/NAME exists and was built from STAMP.
up_to_date() {
  [[ -x "$2/$1" && -f "$2/.$1.stamp" && "$(cat "$2/.$1.stamp")" == "$3" ]]
}

# build NAME DIR STAMP CMD...: run CMD (which must write DIR/NAME) unless it is up to date.
build() {
  local name=$1 dir=$2 stamp=$3
  shift 3
  if up_to_date "$name" "$dir" "$stamp"; then
    log "$name: up to date ($stamp)"
    return
  fi
  mkdir -p "$dir"
  log "$name: building $stamp from source (kube-apiserver takes about 5 minutes cold on 2 cores, jaeger about 3)"
  local start=$SECONDS
  if ! "$@" >&2; then
    fail "$name: 'go build' of $stamp failed (see the compiler output above; the Go module proxy must be reachable for a cold build)"
  fi
  [[ -x "$dir/$name" ]] || fail "$name: the build succeeded but $dir/$name is missing"
  echo "$stamp" >"$dir/.$name.stamp"
  log "$name: built in $((SECONDS - start))s"
}

k8s_ldflags() {
  local minor=${K8S_VERSION#*.}
  minor=${minor%%.*}
  local flags="-s -w"
  # Without these, /version reports v0.0.0 and clients that check it misbehave.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=v${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor}"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

helm_ldflags() {
  local minor=${K8S_VERSION#*.}
  minor=${minor%%.*}
  local flags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  # Helm's offline capabilities (helm template, helm lint) otherwise claim Kubernetes v1.20.
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=${minor}"
  done
  echo "$flags"
}

go_build_in() { # DIR OUT PKG LDFLAGS
  (cd "$1" && go build -trimpath -ldflags "$4" -o "$2" "$3")
}

go_install_tool() { # DIR PKG@VERSION LDFLAGS
  GOBIN="$1" go install -trimpath -ldflags "$3" "$2"
}

build kube-apiserver "$assets" "k8s.io/kubernetes@v${K8S_VERSION}" \
  go_build_in "$root/hack/tools/k8s" "$assets/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$(k8s_ldflags)"
build kube-controller-manager "$assets" "k8s.io/kubernetes@v${K8S_VERSION}" \
  go_build_in "$root/hack/tools/k8s" "$assets/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager "$(k8s_ldflags)"
build kubectl "$assets" "k8s.io/kubernetes@v${K8S_VERSION}" \
  go_build_in "$root/hack/tools/k8s" "$assets/kubectl" k8s.io/kubernetes/cmd/kubectl "$(k8s_ldflags)"
build etcd "$assets" "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" \
  go_build_in "$root/hack/tools/etcd" "$assets/etcd" go.etcd.io/etcd/server/v3 "-s -w"
build controller-gen "$tools" "sigs.k8s.io/controller-tools@${CONTROLLER_TOOLS_VERSION}" \
  go_install_tool "$tools" "sigs.k8s.io/controller-tools/cmd/controller-gen@${CONTROLLER_TOOLS_VERSION}" "-s -w"
build helm "$tools" "helm.sh/helm/v3@${HELM_VERSION}+k8s${K8S_VERSION}" \
  go_install_tool "$tools" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" "$(helm_ldflags)"
build jaeger "$tools" "github.com/jaegertracing/jaeger@${JAEGER_VERSION}" \
  go_build_in "$root/hack/tools/jaeger" "$tools/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger "-s -w"

if $quiet; then
  echo "$assets"
else
  log "envtest assets: $assets"
  log "tools: $tools"
fi
