// Command kfake runs franz-go's in-memory Kafka-protocol broker as a process of its own, for
// benchmarks and local trials: go run ./hack/kfake --help.
package main

import (
	"os"

	"github.com/spanflow/spanflow/internal/kafkatest"
)

func main() {
	os.Exit(kafkatest.Main(os.Args[1:], os.Stdout, os.Stderr))
}
