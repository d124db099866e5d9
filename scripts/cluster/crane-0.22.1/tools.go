//go:build tools

// Images for the real node, built here from Debian and npm packages, and the
// registry on loopback the node pulls them from (crane registry serve):
// scripts/real-node images.
package tools

import (
	_ "github.com/google/go-containerregistry/cmd/crane"
)
