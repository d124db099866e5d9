//go:build tools

// The real node's container runtime (scripts/real-node build): containerd, its
// runc shim and ctr, from github.com/containerd/containerd/v2 through the Go
// module proxy, built with CGO_ENABLED=0 as upstream's static release is.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
