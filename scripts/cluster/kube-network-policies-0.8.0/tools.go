//go:build tools

// The real node's NetworkPolicy enforcement (scripts/cluster/real-node.sh):
// kube-network-policies, the implementation kind uses. It judges each new
// connection of a pod handed to its netlink queue against the policies.
package tools

import (
	_ "sigs.k8s.io/kube-network-policies/cmd"
)
