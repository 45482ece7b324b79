package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spanflow/spanflow/internal/version"
)

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "Print the version of this build.", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "spanflow %s\n", version.Describe())
	return err
}
