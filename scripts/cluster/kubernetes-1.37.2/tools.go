//go:build tools

// The control plane the local cluster runs, and the real node's kubelet, as
// a Go module dependency: the commands below are built from k8s.io/kubernetes
// v1.37.2 fetched through the Go module proxy (scripts/test-cluster
// build_from_modules, scripts/real-node build). go.mod pins
// every staging module k8s.io/kubernetes replaces with a local path — a
// dependent module does not inherit those replaces.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
