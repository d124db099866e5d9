//go:build tools

// The real node's pod network (scripts/real-node build): the bridge, host-local
// and loopback CNI plugins.
package tools

import (
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
)
