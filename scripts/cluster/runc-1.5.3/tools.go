//go:build tools

// The real node's OCI runtime (scripts/real-node build): runc with seccomp
// (cgo against Debian's libseccomp), without upstream's default libpathrs tag,
// which needs a Rust C library we do not build.
package tools

import (
	_ "github.com/opencontainers/runc"
)
