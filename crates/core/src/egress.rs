//! The run's egress NetworkPolicy (issue 21, opt-in: `egressPolicy: true`).
//!
//! Whatever the agent can reach, one injected comment can send data to: cloud
//! metadata (169.254.169.254), the apiserver, the database Service, every
//! internal service. With `egressPolicy` each run gets a NetworkPolicy,
//! `<job>-egress`, selecting that run's pod only (`job-name`, which the Job
//! controller sets on its pods from 1.20 to today) and allowing nothing out
//! but:
//!
//! 1. DNS (UDP and TCP 53), to any address — the cluster's resolver may be a
//!    Service, a node-local cache on a link-local address or the node's own;
//! 2. the Paperclip API: the pods that carry Paperclip's own pod's labels
//!    (minus the per-revision ones, so every replica matches, as its Service
//!    would), on the API URL's port and the ports Paperclip's container
//!    declares (a policy sees the pod's port after the Service's translation);
//!    and, where `PAPERCLIP_API_URL`'s host is an IP address, that address;
//! 3. TCP 443 (and `egressAllowPorts`) to public addresses: everything but the
//!    private, shared (CGNAT), loopback, link-local and unspecified ranges of
//!    IPv4 and IPv6 — which keeps cloud metadata, pod and Service networks
//!    and the node out of reach;
//! 4. each of `egressAllowCidrs`, on any port.
//!
//! Invariants: the policy never selects anything but the run's own pod; it
//! exists before the Job (so the pod never starts unrestricted) and belongs
//! to the Job and to each pod of it once seen — the garbage collector removes
//! an object only when all its owners are gone, so the policy outlives every
//! pod of the run, including one in its grace period after a cancel (only a
//! policy left without an owner is deleted by the run itself). A run that asked for
//! one and cannot create it fails (`k8s_egress_policy_create_failed`) rather
//! than run unrestricted. A policy is inert without a network plugin that
//! enforces NetworkPolicy (Calico, Cilium, …): `testEnvironment` says so.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::config::ConfigError;
use crate::selfpod::SelfPod;

/// The label the Job controller puts on each of its pods (1.20 onwards;
/// `batch.kubernetes.io/job-name` only from 1.27).
pub const JOB_NAME_LABEL: &str = "job-name";

/// Addresses that are not the public internet. Cloud metadata is link-local;
/// pod, Service and node networks live in the private and shared ranges.
const NOT_PUBLIC_V4: &[&str] =
    &["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"];
/// The same for IPv6: loopback and unspecified, unique-local, link-local.
/// (IPv4-mapped `::ffff:0:0/96` cannot be written: the apiserver refuses an
/// IPv4-mapped CIDR anywhere in a policy — seen on 1.37.2 — and such
/// addresses are IPv4 on the wire.)
const NOT_PUBLIC_V6: &[&str] = &["::/127", "fc00::/7", "fe80::/10"];

/// Labels that differ between replicas or revisions of the same server: a
/// selector on them would miss the server after a rollout.
const PER_REPLICA_LABELS: &[&str] =
    &["pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index"];

/// `egressPolicy`, `egressAllowCidrs`, `egressAllowPorts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressConfig {
    pub enabled: bool,
    /// Normalised CIDRs (`a.b.c.d/n`, a bare address as /32 or /128).
    pub allow_cidrs: Vec<String>,
    /// TCP ports allowed to public addresses besides 443.
    pub allow_ports: Vec<u16>,
}

impl EgressConfig {
    pub fn from_map(m: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ConfigError> {
        let allow_cidrs = crate::config::parse_name_list(m.get("egressAllowCidrs"))
            .iter()
            .map(|c| {
                normalise_cidr(c).ok_or_else(|| {
                    ConfigError::Egress(format!(
                        "egressAllowCidrs: {c:?} is not a CIDR (a network address, IPv4 or IPv6, without host bits)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ports: Vec<String> = match m.get("egressAllowPorts") {
            Some(serde_json::Value::Array(a)) => a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect(),
            Some(serde_json::Value::Number(n)) => vec![n.to_string()],
            other => crate::config::parse_name_list(other),
        };
        let mut allow_ports = Vec::new();
        for p in &ports {
            match p.trim().parse::<u16>() {
                Ok(n) if n > 0 => {
                    if n != 443 && !allow_ports.contains(&n) {
                        allow_ports.push(n);
                    }
                }
                _ => {
                    return Err(ConfigError::Egress(format!("egressAllowPorts: {p:?} is not a port (1-65535)")));
                }
            }
        }
        Ok(EgressConfig { enabled: crate::config::as_bool(m, "egressPolicy", false), allow_cidrs, allow_ports })
    }
}

/// `10.0.0.0/8` → itself; `192.0.2.7` → `192.0.2.7/32`; anything else → None.
/// The address part is written back as Rust prints it, so the apiserver's
/// own CIDR check sees a canonical form.
pub fn normalise_cidr(s: &str) -> Option<String> {
    let s = s.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse::<u8>().ok().filter(|n| *n <= max)?,
        None => max,
    };
    // What the apiserver would refuse at create time, every run: an
    // IPv4-mapped IPv6 address, or host bits set under the prefix.
    let host_bits = match ip {
        IpAddr::V4(a) => u32::from(a).checked_shl(u32::from(len)).unwrap_or(0) != 0,
        IpAddr::V6(a) => {
            if a.to_ipv4_mapped().is_some() {
                return None;
            }
            u128::from(a).checked_shl(u32::from(len)).unwrap_or(0) != 0
        }
    };
    (!host_bits).then(|| format!("{ip}/{len}"))
}

/// What the policy is built from.
pub struct EgressInput<'a> {
    pub config: &'a EgressConfig,
    pub job_name: &'a str,
    pub namespace: &'a str,
    pub run_labels: BTreeMap<String, String>,
    pub self_pod: Option<&'a SelfPod>,
    /// The `PAPERCLIP_API_URL` the pod is given.
    pub api_url: &'a str,
}

/// The policy and what it could not allow, for the run's log.
#[derive(Debug, Clone)]
pub struct EgressPlan {
    pub policy: NetworkPolicy,
    /// Each allowed destination in words, for the log and `testEnvironment`.
    pub allows: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn policy_name(job_name: &str) -> String {
    format!("{job_name}-egress")
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort { protocol: Some("TCP".into()), port: Some(IntOrString::Int(port)), ..Default::default() }
}

fn ip_block(cidr: &str, except: &[&str]) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: (!except.is_empty()).then(|| except.iter().map(|s| (*s).to_owned()).collect()),
        }),
        ..Default::default()
    }
}

/// The API URL's host and port (the scheme's default when none is written).
fn api_endpoint(api_url: &str) -> Option<(url::Host<String>, u16)> {
    let u = url::Url::parse(api_url.trim()).ok()?;
    let port = u.port_or_known_default()?;
    Some((u.host()?.to_owned(), port))
}

pub fn plan(input: &EgressInput) -> EgressPlan {
    let mut allows = vec!["DNS (UDP/TCP 53)".to_owned()];
    let mut warnings = Vec::new();
    let mut rules = vec![NetworkPolicyEgressRule {
        ports: Some(vec![
            NetworkPolicyPort { protocol: Some("UDP".into()), port: Some(IntOrString::Int(53)), ..Default::default() },
            tcp(53),
        ]),
        to: None,
    }];

    let endpoint = api_endpoint(input.api_url);
    let api_port = endpoint.as_ref().map(|(_, p)| *p);
    let mut api_allowed = false;
    if let Some(pod) = input.self_pod {
        let selector: BTreeMap<String, String> =
            pod.labels.iter().filter(|(k, _)| !PER_REPLICA_LABELS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        if selector.is_empty() {
            // An empty selector would select every pod of the namespace.
            warnings.push(format!(
                "egress policy: Paperclip's pod {} has no labels to select it by; the Paperclip API is allowed only by address",
                pod.name
            ));
        } else {
            let mut ports: Vec<i32> = api_port.map(i32::from).into_iter().collect();
            for p in &pod.tcp_ports {
                if !ports.contains(p) {
                    ports.push(*p);
                }
            }
            let namespace_selector = (pod.namespace != input.namespace && !pod.namespace.is_empty()).then(|| LabelSelector {
                match_labels: Some(BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), pod.namespace.clone())])),
                ..Default::default()
            });
            if ports.is_empty() {
                // A rule without ports would open every port of those pods.
                warnings.push("egress policy: PAPERCLIP_API_URL has no port and Paperclip's container declares none; the Paperclip API is not allowed".to_owned());
            } else {
                let words = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
                let ports_words = ports.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
                allows.push(match &namespace_selector {
                    Some(_) => format!("the Paperclip API: pods {words} in namespace {}, TCP {ports_words}", pod.namespace),
                    None => format!("the Paperclip API: pods {words}, TCP {ports_words}"),
                });
                rules.push(NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(LabelSelector { match_labels: Some(selector), ..Default::default() }),
                        namespace_selector,
                        ..Default::default()
                    }]),
                    ports: Some(ports.into_iter().map(tcp).collect()),
                });
                api_allowed = true;
            }
        }
    }
    match &endpoint {
        Some((host, port)) => {
            let ip = match host {
                url::Host::Ipv4(a) => Some(IpAddr::V4(*a)),
                url::Host::Ipv6(a) => Some(IpAddr::V6(*a)),
                url::Host::Domain(_) => None,
            };
            if let Some(ip) = ip {
                let cidr = format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 });
                allows.push(format!("the Paperclip API: {cidr}, TCP {port}"));
                rules.push(NetworkPolicyEgressRule { to: Some(vec![ip_block(&cidr, &[])]), ports: Some(vec![tcp(i32::from(*port))]) });
            } else if !api_allowed && *port != 443 {
                warnings.push(format!(
                    "egress policy: the Paperclip API ({host}:{port}) is allowed only if it is Paperclip's own pod; add its address to egressAllowCidrs"
                ));
            }
        }
        None => warnings.push("egress policy: PAPERCLIP_API_URL is not a URL; the Paperclip API is not allowed".to_owned()),
    }

    let mut public_ports = vec![tcp(443)];
    public_ports.extend(input.config.allow_ports.iter().map(|p| tcp(i32::from(*p))));
    let port_words =
        std::iter::once(443).chain(input.config.allow_ports.iter().copied()).map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
    allows.push(format!("public addresses, TCP {port_words}"));
    rules.push(NetworkPolicyEgressRule {
        to: Some(vec![ip_block("0.0.0.0/0", NOT_PUBLIC_V4), ip_block("::/0", NOT_PUBLIC_V6)]),
        ports: Some(public_ports),
    });
    for cidr in &input.config.allow_cidrs {
        allows.push(format!("{cidr}, any port"));
        rules.push(NetworkPolicyEgressRule { to: Some(vec![ip_block(cidr, &[])]), ports: None });
    }

    let mut labels = input.run_labels.clone();
    labels.insert("app.kubernetes.io/component".into(), "agent-egress".into());
    let policy = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(policy_name(input.job_name)),
            namespace: Some(input.namespace.to_owned()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(JOB_NAME_LABEL.to_owned(), input.job_name.to_owned())])),
                ..Default::default()
            }),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(rules),
            ingress: None,
        }),
    };
    EgressPlan { policy, allows, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> Result<EgressConfig, ConfigError> {
        EgressConfig::from_map(v.as_object().unwrap())
    }

    fn self_pod() -> SelfPod {
        SelfPod {
            name: "paperclip-0".into(),
            namespace: "paperclip".into(),
            labels: BTreeMap::from([
                ("app".to_owned(), "paperclip".to_owned()),
                ("controller-revision-hash".to_owned(), "paperclip-5d8f".to_owned()),
                ("statefulset.kubernetes.io/pod-name".to_owned(), "paperclip-0".to_owned()),
            ]),
            tcp_ports: vec![3100],
            ..Default::default()
        }
    }

    fn input<'a>(c: &'a EgressConfig, pod: Option<&'a SelfPod>, api_url: &'a str) -> EgressInput<'a> {
        EgressInput {
            config: c,
            job_name: "ac-a-run-1-abcdef",
            namespace: "paperclip",
            run_labels: BTreeMap::new(),
            self_pod: pod,
            api_url,
        }
    }

    #[test]
    fn config_reads_lists_and_refuses_junk() {
        let c = cfg(json!({"egressPolicy": true, "egressAllowCidrs": "10.1.0.0/16, 192.0.2.7\n# db\n2001:db8::/32", "egressAllowPorts": [22, "8443", 443, 22]})).unwrap();
        assert!(c.enabled);
        assert_eq!(c.allow_cidrs, ["10.1.0.0/16", "192.0.2.7/32", "2001:db8::/32"]);
        assert_eq!(c.allow_ports, [22, 8443]);
        assert_eq!(cfg(json!({})).unwrap(), EgressConfig::default());
        assert_eq!(cfg(json!({"egressAllowPorts": 8443})).unwrap().allow_ports, [8443]);
        for bad in [
            json!({"egressAllowCidrs": ["10.0.0.0/33"]}),
            json!({"egressAllowCidrs": "example.com"}),
            json!({"egressAllowPorts": [0]}),
            json!({"egressAllowPorts": "70000"}),
            json!({"egressAllowPorts": [true]}),
        ] {
            let e = cfg(bad.clone()).unwrap_err().to_string();
            assert!(e.starts_with("invalid egress config: egressAllow"), "{bad}: {e}");
        }
    }

    #[test]
    fn selects_only_the_runs_pod_and_allows_what_the_module_says() {
        let c = cfg(json!({"egressPolicy": true, "egressAllowCidrs": ["10.9.0.0/16"], "egressAllowPorts": [22]})).unwrap();
        let pod = self_pod();
        let p = plan(&input(&c, Some(&pod), "http://paperclip.paperclip.svc:80"));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let v = serde_json::to_value(&p.policy).unwrap();
        assert_eq!(v["metadata"]["name"], "ac-a-run-1-abcdef-egress");
        assert_eq!(v["spec"]["podSelector"], json!({"matchLabels": {"job-name": "ac-a-run-1-abcdef"}}));
        assert_eq!(v["spec"]["policyTypes"], json!(["Egress"]));
        let rules = v["spec"]["egress"].as_array().unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0], json!({"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}));
        // The server's replicas, by their stable labels only; the URL's port and the container's.
        assert_eq!(
            rules[1],
            json!({"to": [{"podSelector": {"matchLabels": {"app": "paperclip"}}}], "ports": [{"port": 80, "protocol": "TCP"}, {"port": 3100, "protocol": "TCP"}]})
        );
        let public = &rules[2]["to"];
        assert_eq!(public[0]["ipBlock"]["cidr"], "0.0.0.0/0");
        for private in ["10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "100.64.0.0/10"] {
            assert!(public[0]["ipBlock"]["except"].as_array().unwrap().contains(&json!(private)), "{private}");
        }
        assert_eq!(public[1]["ipBlock"]["cidr"], "::/0");
        assert_eq!(rules[2]["ports"], json!([{"port": 443, "protocol": "TCP"}, {"port": 22, "protocol": "TCP"}]));
        assert_eq!(rules[3], json!({"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}]}));
        assert_eq!(p.allows.len(), 4);
    }

    #[test]
    fn the_api_by_address_across_namespaces_and_when_it_cannot_be_allowed() {
        let c = EgressConfig { enabled: true, ..Default::default() };
        // Off-cluster host at an address: that address, on its port.
        let p = plan(&input(&c, None, "http://192.0.2.10:3100/"));
        let v = serde_json::to_value(&p.policy).unwrap();
        assert_eq!(
            v["spec"]["egress"][1],
            json!({"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}], "ports": [{"port": 3100, "protocol": "TCP"}]})
        );
        assert!(p.warnings.is_empty());
        // A name that is not Paperclip's pod and not on 443: said, not guessed.
        let p = plan(&input(&c, None, "http://paperclip.internal:3100"));
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("paperclip.internal:3100"));
        // Paperclip in another namespace: selected there by name.
        let mut pod = self_pod();
        pod.namespace = "control".into();
        let v = serde_json::to_value(plan(&input(&c, Some(&pod), "http://localhost:3100")).policy).unwrap();
        assert_eq!(
            v["spec"]["egress"][1]["to"][0]["namespaceSelector"],
            json!({"matchLabels": {"kubernetes.io/metadata.name": "control"}})
        );
        // A pod with no labels must never become an empty (select-all) selector.
        let mut bare = self_pod();
        bare.labels.clear();
        let p = plan(&input(&c, Some(&bare), "http://paperclip:3100"));
        let v = serde_json::to_value(&p.policy).unwrap();
        assert!(v["spec"]["egress"].as_array().unwrap().iter().all(|r| r["to"][0].get("podSelector").is_none()));
        assert!(p.warnings.iter().any(|w| w.contains("no labels")), "{:?}", p.warnings);
    }

    #[test]
    fn cidrs_are_normalised() {
        assert_eq!(normalise_cidr(" 10.0.0.0/8 ").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(normalise_cidr("2001:DB8::1").as_deref(), Some("2001:db8::1/128"));
        assert_eq!(normalise_cidr("10.0.0.0/"), None);
        assert_eq!(normalise_cidr("::/129"), None);
        assert_eq!(normalise_cidr("10.1.2.3/8"), None, "host bits");
        assert_eq!(normalise_cidr("10.1.2.3/32").as_deref(), Some("10.1.2.3/32"));
        assert_eq!(normalise_cidr("0.0.0.0/0").as_deref(), Some("0.0.0.0/0"));
        assert_eq!(normalise_cidr("::ffff:10.0.0.1"), None, "IPv4-mapped: the apiserver refuses it");
    }
}
