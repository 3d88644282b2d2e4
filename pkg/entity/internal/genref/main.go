// Command genref writes entities.md, the canonical entities' reference,
// from their schemas. It runs as `go generate ./pkg/entity`, in that folder.
package main

import (
	"fmt"
	"os"

	"github.com/syncline/syncline/pkg/entity"
)

func main() {
	if err := os.WriteFile("entities.md", entity.Reference(), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "genref: writing entities.md: %v\n", err)
		os.Exit(1)
	}
}
