// Command spanflow is one binary for both halves of spanflow: the Kubernetes operator
// (`spanflow manager`) and the Kafka-to-trace-storage workload it runs (`spanflow ingest`).
package main

import (
	"os"

	"github.com/spanflow/spanflow/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
