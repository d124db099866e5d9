# The real node of the local cluster (CLAUDE_K8S_NODE=real): the kubelet of
# the control plane's release, containerd with its runc shim, runc with
# seccomp, the bridge/host-local/loopback CNI plugins, and crane for the
# images and the registry on loopback, and kube-network-policies (the
# NetworkPolicy implementation kind uses) — all built here from Go modules
# through the proxy (scripts/cluster/<part>-<version>, go.sum committed),
# once, cached under ~/.cache/claude-k8s/<part>-<version>/bin.
#
# Sourced by scripts/test-cluster, which provides R, CACHE, ROOT, K8S_VERSION,
# log, die, go_build, start, stop_pid, kc and wait_for.

CONTAINERD_VERSION=2.4.2
RUNC_VERSION=1.5.3
CNI_VERSION=1.10.0
CRANE_VERSION=0.22.1
KNP_VERSION=0.8.0
KUBELET_BIN=$CACHE/kubelet-$K8S_VERSION/bin/kubelet
CONTAINERD_BIN=$CACHE/containerd-$CONTAINERD_VERSION/bin
RUNC_BIN=$CACHE/runc-$RUNC_VERSION/bin/runc
CNI_BIN=$CACHE/cni-plugins-$CNI_VERSION/bin
CRANE_BIN=$CACHE/crane-$CRANE_VERSION/bin/crane
KNP_BIN=$CACHE/kube-network-policies-$KNP_VERSION/bin/kube-network-policies

# ---------------------------------------------------------------- build
real_node_packages() {
  local missing=()
  # runc's seccomp is cgo against libseccomp; the pause image is compiled
  # from pause.c (gcc -static).
  dpkg -s libseccomp-dev >/dev/null 2>&1 || missing+=(libseccomp-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  command -v gcc >/dev/null || missing+=(gcc libc6-dev)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v nsenter >/dev/null || missing+=(util-linux)
  command -v curl >/dev/null || missing+=(curl)
  # NetworkPolicy: pods' new connections go to kube-network-policies' netlink
  # queue through an xtables NFQUEUE rule (see enforce_network_policies).
  command -v iptables-legacy >/dev/null || missing+=(iptables)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages for the real node: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

real_node_built() {
  [ -x "$KUBELET_BIN" ] && [ -x "$CONTAINERD_BIN/containerd" ] && [ -x "$CONTAINERD_BIN/containerd-shim-runc-v2" ] &&
    [ -x "$CONTAINERD_BIN/ctr" ] && [ -x "$RUNC_BIN" ] && [ -x "$CNI_BIN/bridge" ] && [ -x "$CNI_BIN/host-local" ] &&
    [ -x "$CNI_BIN/loopback" ] && [ -x "$CRANE_BIN" ] && [ -x "$KNP_BIN" ]
}

build_real_node() {
  [ "$K8S_VERSION" != 1.20.2 ] || die "the real node is built for Kubernetes 1.37.2 only (1.20.2 keeps the simulated node: CLAUDE_K8S_NODE=sim)"
  real_node_packages
  real_node_built && return 0
  mkdir -p "$CACHE"
  exec 8>"$CACHE/real-node.lock"
  flock 8
  real_node_built && { exec 8>&-; return 0; }
  local M=$ROOT/scripts/cluster t0=$SECONDS
  # One Go build cache for the parts (they share the standard library, x/sys,
  # grpc…), removed afterwards like the control plane's: the binaries are the cache.
  export GO_BUILD_CACHE=$CACHE/real-node.gocache
  rm -rf "$GO_BUILD_CACHE"
  log "building the real node's parts from Go modules (once; ~10 min on 2 cores)"
  if [ ! -x "$KUBELET_BIN" ]; then
    local vp=k8s.io/component-base/version minor
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    log "kubelet v$K8S_VERSION (k8s.io/kubernetes/cmd/kubelet)"
    go_build "$M/kubernetes-$K8S_VERSION" "$(dirname "$KUBELET_BIN")" \
      "-s -w -X $vp.gitVersion=v$K8S_VERSION -X $vp.gitMajor=1 -X $vp.gitMinor=$minor -X $vp.gitTreeState=clean -X $vp.buildDate=1970-01-01T00:00:00Z" \
      k8s.io/kubernetes/cmd/kubelet
  fi
  if [ ! -x "$CONTAINERD_BIN/ctr" ] || [ ! -x "$CONTAINERD_BIN/containerd" ] || [ ! -x "$CONTAINERD_BIN/containerd-shim-runc-v2" ]; then
    local cp=github.com/containerd/containerd/v2
    log "containerd v$CONTAINERD_VERSION, containerd-shim-runc-v2, ctr"
    GO_TAGS=urfave_cli_no_docs go_build "$M/containerd-$CONTAINERD_VERSION" "$CONTAINERD_BIN" \
      "-s -w -X $cp/version.Version=v$CONTAINERD_VERSION -X $cp/version.Revision=module" \
      $cp/cmd/containerd $cp/cmd/containerd-shim-runc-v2 $cp/cmd/ctr
  fi
  if [ ! -x "$RUNC_BIN" ]; then
    # Upstream's default tags add libpathrs (a Rust C library); seccomp is what matters.
    log "runc v$RUNC_VERSION (seccomp, cgo)"
    GO_CGO=1 GO_TAGS="seccomp urfave_cli_no_docs" go_build "$M/runc-$RUNC_VERSION" "$(dirname "$RUNC_BIN")" \
      "-s -w -X main.gitCommit=v$RUNC_VERSION" github.com/opencontainers/runc
  fi
  if [ ! -x "$CNI_BIN/bridge" ] || [ ! -x "$CNI_BIN/host-local" ] || [ ! -x "$CNI_BIN/loopback" ]; then
    local pp=github.com/containernetworking/plugins
    log "CNI plugins v$CNI_VERSION: bridge, host-local, loopback"
    go_build "$M/cni-plugins-$CNI_VERSION" "$CNI_BIN" "-s -w -X $pp/pkg/utils/buildversion.BuildVersion=v$CNI_VERSION" \
      $pp/plugins/main/bridge $pp/plugins/ipam/host-local $pp/plugins/main/loopback
  fi
  if [ ! -x "$CRANE_BIN" ]; then
    log "crane v$CRANE_VERSION"
    go_build "$M/crane-$CRANE_VERSION" "$(dirname "$CRANE_BIN")" "-s -w" github.com/google/go-containerregistry/cmd/crane
  fi
  if [ ! -x "$KNP_BIN" ]; then
    log "kube-network-policies v$KNP_VERSION"
    go_build "$M/kube-network-policies-$KNP_VERSION" "$(dirname "$KNP_BIN")" "-s -w" sigs.k8s.io/kube-network-policies/cmd
    mv "$(dirname "$KNP_BIN")/cmd" "$KNP_BIN"
  fi
  rm -rf "$GO_BUILD_CACHE"; unset GO_BUILD_CACHE
  exec 8>&-
  log "the real node's parts built in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- images
# The images the node pulls, built here from packages — no image comes from
# elsewhere. Each is a rootfs layer (gzip, built once, cached by what it holds)
# pushed at `up` to a registry on loopback (crane registry serve); containerd's
# hosts config sends the names our Jobs and tests use there and nowhere else,
# so an image the registry lacks fails to pull for real.
PAUSE_IMAGE=registry.k8s.io/pause:3.10.2
BUSYBOX_IMAGE=busybox:1.36               # the Job's write-prompt init container
AGENT_IMAGE=claude-k8s/local:dev         # Node.js + the pinned Claude Code CLI; also the e2e Paperclip pod's

# The files of a Debian package, without installing it (apt-get download).
deb_extract() { # package dest
  local d=$CACHE/debs
  mkdir -p "$d"
  ls "$d/$1"_*.deb >/dev/null 2>&1 || (cd "$d" && apt-get download -qq "$1" >/dev/null 2>&1) ||
    { apt-get update -qq && (cd "$d" && apt-get download -qq "$1" >/dev/null); } || die "apt-get download $1 failed"
  dpkg-deb -x "$(ls "$d/$1"_*.deb | head -n 1)" "$2"
}

# A binary and the shared libraries it loads, at the same paths (the libraries
# are those of Debian's libc6, libstdc++6, libgcc-s1 installed here).
copy_with_libs() { # binary dest-root path-in-image
  mkdir -p "$2$(dirname "$3")"
  cp -L "$1" "$2$3"
  local lib
  for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
    mkdir -p "$2$(dirname "$lib")"
    cp -L "$lib" "$2$lib"
  done
}

busybox_rootfs() { # dest: busybox-static's busybox and its applets as links
  deb_extract busybox-static "$1.deb"
  mkdir -p "$1/bin" "$1/tmp" "$1/etc"
  cp "$1.deb/bin/busybox" "$1/bin/busybox"
  rm -rf "$1.deb"
  local a
  for a in $("$1/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"; done
  chmod 1777 "$1/tmp"
  mkdir -p "$1/usr/bin"; ln -sf /bin/env "$1/usr/bin/env"
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/paperclip:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$1/etc/passwd"
  printf 'root:x:0:\nuser:x:1000:\nnobody:x:65534:\n' >"$1/etc/group"
}

layer_tgz() { # rootfs out.tar.gz — reproducible: sorted, owned by root, fixed times
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$1" -cf - . | gzip -1 -n >"$2.tmp"
  mv "$2.tmp" "$2"
}

# Builds the layers missing from the cache; prints nothing. Keys: the pause
# source's module version, the busybox package, the Node binary and CLI version.
IMAGES_DIR=$CACHE/images
build_image_layers() {
  mkdir -p "$IMAGES_DIR"
  local S=$IMAGES_DIR/scratch
  if [ ! -f "$IMAGES_DIR/pause-$K8S_VERSION.tar.gz" ]; then
    log "image layer: pause (build/pause/linux/pause.c of k8s.io/kubernetes v$K8S_VERSION, gcc -static)"
    local src
    src=$(cd "$ROOT/scripts/cluster/kubernetes-$K8S_VERSION" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' k8s.io/kubernetes)
    rm -rf "$S"; mkdir -p "$S/rootfs"
    gcc -Os -Wall -Werror -static -DVERSION=v3.10.2-claude-k8s -o "$S/rootfs/pause" "$src/build/pause/linux/pause.c"
    layer_tgz "$S/rootfs" "$IMAGES_DIR/pause-$K8S_VERSION.tar.gz"
  fi
  local bb
  bb=$(apt-cache policy busybox-static | sed -n 's/^  Candidate: //p')
  BUSYBOX_LAYER=$IMAGES_DIR/busybox-r2-${bb//[^A-Za-z0-9.]/_}.tar.gz
  if [ ! -f "$BUSYBOX_LAYER" ]; then
    log "image layer: busybox (Debian busybox-static $bb)"
    rm -rf "$S"; mkdir -p "$S"
    busybox_rootfs "$S/rootfs"
    layer_tgz "$S/rootfs" "$BUSYBOX_LAYER"
  fi
  local cli node_v cli_v
  cli=$(readlink -f "$IMAGE_BIN/claude")
  [ -x "$cli" ] || die "no Claude Code CLI at $IMAGE_BIN/claude"
  node_v=$(node --version)
  cli_v=$("$cli" --version 2>/dev/null | head -n 1 | cut -d' ' -f1)
  # (r2: bash — the CLI's Bash tool refuses busybox sh: "No suitable shell found")
  AGENT_LAYER=$IMAGES_DIR/agent-r2-node${node_v#v}-claude${cli_v}.tar.gz
  if [ ! -f "$AGENT_LAYER" ]; then
    log "image layer: agent (busybox, bash, Node.js $node_v, Claude Code $cli_v)"
    rm -rf "$S"; mkdir -p "$S"
    busybox_rootfs "$S/rootfs"
    rm -f "$S/rootfs/bin/bash"
    copy_with_libs /bin/bash "$S/rootfs" /bin/bash
    copy_with_libs "$(command -v node)" "$S/rootfs" /usr/local/bin/node
    copy_with_libs "$cli" "$S/rootfs" /usr/local/bin/claude
    mkdir -p "$S/rootfs/paperclip"
    layer_tgz "$S/rootfs" "$AGENT_LAYER"
  fi
  rm -rf "$S"
}

# Pushes the images to the registry at 127.0.0.1:$1 under the names
# containerd resolves there (docker.io/<repo>, registry.k8s.io/<repo>).
push_images() { # port
  local reg=127.0.0.1:$1 t0=$SECONDS
  push_one() { # layer repo:tag config-flags...
    local layer=$1 ref=$reg/$2; shift 2
    "$CRANE_BIN" append --insecure --oci-empty-base -f "$layer" -t "$ref" >/dev/null 2>>"$R/logs/images.log" || die "pushing $ref failed ($R/logs/images.log)"
    "$CRANE_BIN" mutate --insecure "$ref" -t "$ref" --set-platform linux/amd64 "$@" >/dev/null 2>>"$R/logs/images.log" || die "configuring $ref failed ($R/logs/images.log)"
  }
  push_one "$IMAGES_DIR/pause-$K8S_VERSION.tar.gz" pause:3.10.2 --entrypoint /pause --user 65535:65535
  push_one "$BUSYBOX_LAYER" library/busybox:1.36 --cmd sh --env PATH=/bin
  push_one "$AGENT_LAYER" claude-k8s/local:dev --cmd sh --env PATH=/usr/local/bin:/bin
  log "images pushed to the registry on $reg in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- up / down
# Where the node lives, seen from the machine: $N. Inside the node's private
# mount namespace $N/run, $N/var-lib and $N/var-log are /run, /var/lib and
# /var/log, and files of ours stand over the sysctls the kubelet and the CNI
# bridge would otherwise write — nothing of the machine's is changed.
N=$R/realnode
SYSCTLS="vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000 net/ipv4/ip_forward=0"

# A name and a /24 of our own: from the run directory, so that two clusters on
# one machine (two work trees, a CI clone) never share a bridge or a subnet.
pick_network() {
  local h i n
  h=$(printf '%s' "$R" | cksum | cut -d' ' -f1)
  BRIDGE=ck8s$(printf '%06x' $((h % 16777216)))
  for i in $(seq 0 149); do
    n=$((100 + (h + i) % 150))
    ip -4 -o addr show | grep -q " 10\.244\.$n\." && continue
    ip -4 route show | grep -q "^10\.244\.$n\." && continue
    SUBNET_PREFIX=10.244.$n; NODE_IP=$SUBNET_PREFIX.1; return 0
  done
  die "no free 10.244.x.0/24 for the node's bridge"
}

# The cgroup every pod goes under (kubelet cgroupRoot), one per cluster, made
# in every v1 hierarchy (and name=systemd, unified) and removed by `down`.
cgroup_dirs() { # prints each hierarchy's copy of $CGROUP_ROOT
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -f "$h/cgroup.procs" ] && echo "${h%/}$CGROUP_ROOT"
  done
}

make_cgroup_root() {
  local d parent
  for d in $(cgroup_dirs); do
    mkdir -p "$d"
    parent=$(dirname "$d")
    # A new cpuset (v1) has no cpus or mems until given its parent's.
    if [ -f "$d/cpuset.cpus" ]; then
      cat "$parent/cpuset.cpus" >"$d/cpuset.cpus"
      cat "$parent/cpuset.mems" >"$d/cpuset.mems"
    fi
  done
}

up_real_node() {
  real_node_built || build_real_node
  build_image_layers
  pick_network
  CGROUP_ROOT=/claude-k8s-$BRIDGE
  mkdir -p "$N"/{run,var-lib,var-log,sysctl,certs.d,cni/net.d,registry}
  # Known to `down` before anything is made, should `up` stop half-way.
  echo "$BRIDGE" >"$N/bridge"
  local kv k v
  for kv in $SYSCTLS; do k=${kv%%=*}; v=${kv#*=}; echo "$v" >"$N/sysctl/${k//\//.}"; done

  # The registry on loopback, and the names it serves.
  REGISTRY_PORT=$(free_port)
  start registry "$CRANE_BIN" registry serve --address "127.0.0.1:$REGISTRY_PORT" --disk "$N/registry"
  wait_for 30 "the registry on 127.0.0.1:$REGISTRY_PORT" curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/"
  push_images "$REGISTRY_PORT"
  local name
  for name in docker.io registry.k8s.io; do
    mkdir -p "$N/certs.d/$name"
    # `server` too: without it containerd falls back to the real registry.
    cat >"$N/certs.d/$name/hosts.toml" <<TOML
server = "http://127.0.0.1:$REGISTRY_PORT"

[host."http://127.0.0.1:$REGISTRY_PORT"]
  capabilities = ["pull", "resolve"]
TOML
  done

  # The bridge, with the node's address: the kubelet serves there (a loopback
  # node IP is refused) and pods reach the node's services there. No gateway,
  # no masquerade, no route beyond the /24.
  ip link add name "$BRIDGE" type bridge
  ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  cat >"$N/cni/net.d/10-claude-k8s.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "claude-k8s",
  "plugins": [{
    "type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false, "hairpinMode": false,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "$SUBNET_PREFIX.0/24", "rangeStart": "$SUBNET_PREFIX.10", "rangeEnd": "$SUBNET_PREFIX.250"}]], "routes": []}
  }]
}
JSON
  make_cgroup_root

  cat >"$N/containerd.toml" <<TOML
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$PAUSE_IMAGE"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$N/certs.d"

[plugins."io.containerd.cri.v1.runtime"]
  netns_mounts_under_state_dir = true
  # These machines drop CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      BinaryName = "$RUNC_BIN"
      SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$CNI_BIN"]
    conf_dir = "$N/cni/net.d"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.transfer.v1.local"]
  config_path = "$N/certs.d"
TOML

  HEALTHZ_PORT=$(free_port)
  cat >"$N/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# These machines have cgroup v1 only; 1.35+ refuse it unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
imageServiceEndpoint: unix:///run/containerd/containerd.sock
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $HEALTHZ_PORT
# A test node: the apiserver's log and exec requests are not authenticated.
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
makeIPTablesUtilChains: false
# The kubelet checks, and does not write, the kernel settings it wants: the
# node's namespace has files of ours holding them.
protectKernelDefaults: true
failSwapOn: false
containerLogMaxSize: ${CLAUDE_K8S_CONTAINER_LOG_MAX_SIZE:-10Mi}
containerLogMaxFiles: 5
serializeImagePulls: false
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
YAML

  # The namespace holder: a process in a private mount namespace with our
  # directories and files mounted; containerd and the kubelet enter it.
  local mounts="mount --bind '$N/run' /run && mount --bind '$N/var-lib' /var/lib && mount --bind '$N/var-log' /var/log"
  for kv in $SYSCTLS; do k=${kv%%=*}; mounts="$mounts && mount --bind '$N/sysctl/${k//\//.}' /proc/sys/$k"; done
  start node-ns unshare --mount --propagation private sh -c "$mounts && exec sleep infinity"
  local holder; holder=$(cat "$R/pids/node-ns")
  wait_for 10 "the node's mount namespace" sh -c "[ \"\$(readlink /proc/$holder/ns/mnt)\" != \"\$(readlink /proc/self/ns/mnt)\" ] && nsenter --mount=/proc/$holder/ns/mnt test -f /proc/sys/vm/overcommit_memory && nsenter --mount=/proc/$holder/ns/mnt findmnt /var/log"
  local in_ns=(nsenter "--mount=/proc/$holder/ns/mnt" --)
  start containerd env PATH="$CONTAINERD_BIN:$PATH" "${in_ns[@]}" "$CONTAINERD_BIN/containerd" --config "$N/containerd.toml"
  wait_for 60 "containerd" test -S "$N/run/containerd/containerd.sock"
  start kubelet "${in_ns[@]}" "$KUBELET_BIN" --config "$N/kubelet.yaml" --kubeconfig "$R/node.kubeconfig" \
    --root-dir /var/lib/kubelet --node-ip "$NODE_IP" --hostname-override "$NODE_NAME"
  enforce_network_policies "${in_ns[@]}"
}

# NetworkPolicy, enforced as kind enforces it: kube-network-policies judges
# each new connection of a pod against the policies that select it and the
# destination (egress of the source pod, ingress of the destination pod) and
# drops what they do not allow. It hands itself the packets with an nftables
# `queue` rule — which these kernels lack (CONFIG_NFT_QUEUE is not set: its
# rule set is refused, whole, and it logs that at each sync). The same netlink
# queue is fed here by an xtables rule instead (NFQUEUE, built in), for new
# connections coming in from our bridge only: to the node's own addresses
# (INPUT: the mock APIs, the host) and between pods (FORWARD: bridged frames
# pass the IPv4 hooks, bridge-nf-call-iptables), so the node's services are
# behind the policies too, where upstream's postrouting hook would not see
# them. `--queue-bypass`: with no listener the packet passes, as it would on a
# node without enforcement, so a stopped controller shows as a policy not
# enforced (what the egress test checks), never as a node that drops
# everything. Queue number and chain are ours (from the bridge's name);
# `down` removes both rules and the chain.
NP_CHAIN_SUFFIX=-np
enforce_network_policies() { # in-namespace command prefix...
  local chain=$BRIDGE$NP_CHAIN_SUFFIX sa=$N/run/secrets/kubernetes.io/serviceaccount h
  h=$(printf '%s' "$BRIDGE" | cksum | cut -d' ' -f1)
  NP_QUEUE=$((1000 + h % 30000))
  kc apply -f - >/dev/null <<'YAML'
# What kube-network-policies' own install.yaml grants it.
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: kube-network-policies}
rules:
- {apiGroups: [""], resources: [pods, namespaces], verbs: [list, watch]}
- {apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [list, watch]}
---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: kube-network-policies}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kube-network-policies}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-network-policies}]
YAML
  # rest.InClusterConfig: the token and CA where a pod has them (/var/run is
  # /run, ours, in the node's mount namespace), the apiserver from the env.
  mkdir -p "$sa"
  awk -F, '$2 == "kube-network-policies" {printf "%s", $1}' "$R/tokens.csv" >"$sa/token"
  [ -s "$sa/token" ] || die "no token for kube-network-policies in $R/tokens.csv"
  cp "$R/certs/apiserver.crt" "$sa/ca.crt"
  start network-policies env KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$APISERVER_PORT" \
    "$@" "$KNP_BIN" --hostname-override="$NODE_NAME" --nfqueue-id="$NP_QUEUE" --netfilter-bug-1766-fix=false \
    --disable-nri --metrics-bind-address="127.0.0.1:$(free_port)" --v=2
  iptables-legacy -w -N "$chain"
  iptables-legacy -w -A "$chain" -m conntrack --ctstate NEW -j NFQUEUE --queue-num "$NP_QUEUE" --queue-bypass
  iptables-legacy -w -I INPUT -i "$BRIDGE" -j "$chain"
  iptables-legacy -w -I FORWARD -i "$BRIDGE" -j "$chain"
  # Listening: the queue is bound once its informers have synced.
  wait_for 60 "kube-network-policies on queue $NP_QUEUE" sh -c "awk '\$1 == $NP_QUEUE' /proc/net/netfilter/nfnetlink_queue | grep -q ."
}

# What `up` writes to the env file for the real node.
real_node_env() {
  cat <<ENV
CLAUDE_K8S_NODE=real
NODE_IP=$NODE_IP
NODE_SERVICES_HOST=$NODE_IP
NODE_BRIDGE=$BRIDGE
NODE_CGROUP_ROOT=$CGROUP_ROOT
NODE_DIR=$N
NODE_LOGS=$N/var-log/pods
CONTAINERD_ADDRESS=$N/run/containerd/containerd.sock
CTR=$CONTAINERD_BIN/ctr
REGISTRY=127.0.0.1:$REGISTRY_PORT
ENV
}

# Everything the node started, stopped by pid; then checked, not assumed:
# no process of the node's, no container, shim, cgroup, bridge or mount left.
down_real_node() {
  local env=$R/env holder ns_mnt bridge cgroot
  bridge=$(sed -n 's/^NODE_BRIDGE=//p' "$env" 2>/dev/null)
  cgroot=$(sed -n 's/^NODE_CGROUP_ROOT=//p' "$env" 2>/dev/null)
  [ -n "$bridge" ] || bridge=$(cat "$N/bridge" 2>/dev/null || true)
  [ -n "$cgroot" ] || cgroot=/claude-k8s-$bridge
  CGROUP_ROOT=$cgroot
  holder=$(cat "$R/pids/node-ns" 2>/dev/null || true)
  ns_mnt=""
  [ -n "$holder" ] && ns_mnt=$(readlink "/proc/$holder/ns/mnt" 2>/dev/null || true)
  # The NetworkPolicy rules and chain, then their controller: SIGINT, the
  # signal on which it removes its nftables table (were it able to make one).
  if [ -n "$bridge" ] && command -v iptables-legacy >/dev/null; then
    local chain=$bridge$NP_CHAIN_SUFFIX
    while iptables-legacy -w -D INPUT -i "$bridge" -j "$chain" 2>/dev/null; do :; done
    while iptables-legacy -w -D FORWARD -i "$bridge" -j "$chain" 2>/dev/null; do :; done
    iptables-legacy -w -F "$chain" 2>/dev/null && iptables-legacy -w -X "$chain" 2>/dev/null
  fi
  local np_pid
  np_pid=$(cat "$R/pids/network-policies" 2>/dev/null || true)
  if [ -n "$np_pid" ] && kill -INT "$np_pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$np_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  stop_pid network-policies
  stop_pid kubelet
  # Containers: whatever is left in the pods' cgroups, killed by pid (their
  # shims then exit); then containerd, then anything else still in the node's
  # mount namespace (shims), by pid.
  local d pids p round
  for round in 1 2 3 4 5; do
    pids=$(for d in $(cgroup_dirs); do [ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u)
    [ -n "$pids" ] || break
    for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
    sleep 0.3
  done
  stop_pid containerd
  if [ -n "$ns_mnt" ]; then
    for round in 1 2 3 4 5; do
      pids=""
      for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" != "$holder" ] && [ "$(readlink "/proc/$p/ns/mnt" 2>/dev/null)" = "$ns_mnt" ] && pids="$pids $p"
      done
      [ -n "$pids" ] || break
      for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
      sleep 0.3
    done
  fi
  stop_pid node-ns
  stop_pid registry
  # The cgroups, deepest first (a cgroup with no task can be removed).
  for d in $(cgroup_dirs); do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  # A pod's network namespace goes when nothing holds it; its veth with it.
  local veths=""
  if [ -n "$bridge" ]; then
    for round in $(seq 1 25); do
      veths=$(ip -o link show master "$bridge" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | tr '\n' ' ')
      [ -z "${veths// /}" ] && break
      sleep 0.2
    done
    ip link del "$bridge" 2>/dev/null || true
  fi

  # Checked, not assumed.
  local left=()
  if [ -n "$ns_mnt" ]; then
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns_mnt" ] && left+=("process ${p#/proc/} in the node's mount namespace")
    done
  fi
  for d in $(cgroup_dirs); do [ -d "$d" ] && left+=("cgroup $d"); done
  [ -n "$bridge" ] && ip link show "$bridge" >/dev/null 2>&1 && left+=("bridge $bridge")
  [ -n "$bridge" ] && iptables-legacy -w -S "$bridge$NP_CHAIN_SUFFIX" >/dev/null 2>&1 && left+=("iptables chain $bridge$NP_CHAIN_SUFFIX")
  [ -n "${veths// /}" ] && left+=("pod network namespaces (veths $veths)")
  pgrep -f "$N/" >/dev/null 2>&1 && left+=("process naming $N: $(pgrep -f "$N/" | tr '\n' ' ')")
  findmnt -rn -o TARGET | grep -q "^$N" && left+=("mount under $N")
  if [ ${#left[@]} -gt 0 ]; then
    printf '[test-cluster] error: the real node left: %s\n' "${left[@]}" >&2
    return 1
  fi
  log "real node down: no container, shim, mount, netns, bridge, iptables rule or cgroup left"
}
