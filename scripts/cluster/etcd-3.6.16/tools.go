//go:build tools

// etcd for the local cluster's v1.37 control plane, built from
// go.etcd.io/etcd/server/v3 (its root package is etcd's main) through the
// Go module proxy. Debian's etcd 3.4 is older than what 1.37 supports.
package tools

import _ "go.etcd.io/etcd/server/v3"
