// getConfigSchema() (contract §1.12): the fields Paperclip's UI shows for a
// claude_k8s agent, in the original's order, types and defaults.
const policy = ["IfNotPresent", "Always", "Never"].map((v) => ({ value: v, label: v }));

const FIELDS = [
  { key: "maxTurnsPerRun", label: "Max turns per run", type: "number", default: 1000, hint: "Passed to claude as --max-turns. 0 or empty means no limit." },
  { key: "serviceAccountName", label: "Service account", type: "text", hint: "ServiceAccount the Job pod runs as (default: the namespace's default)." },
  { key: "namespace", label: "Namespace", type: "text", hint: "Namespace for Jobs. Defaults to the namespace Paperclip runs in (or the kubeconfig context's when off-cluster)." },
  { key: "image", label: "Image", type: "text", hint: "Container image with the claude CLI. Defaults to Paperclip's own image; required when Paperclip does not run in a pod." },
  { key: "imagePullPolicy", label: "Image pull policy", type: "select", options: policy, hint: "Default IfNotPresent." },
  { key: "kubeconfig", label: "Kubeconfig path", type: "text", hint: "Path to a kubeconfig file. Empty: in-cluster service account (or KUBECONFIG)." },
  { key: "ttlSecondsAfterFinished", label: "TTL after finished (s)", type: "number", hint: "Seconds Kubernetes keeps a finished Job. Default 300." },
  { key: "retainJobs", label: "Retain Jobs", type: "toggle", hint: "Keep Jobs after the run for debugging." },
  { key: "reattachOrphanedJobs", label: "Reattach orphaned Jobs", type: "toggle", default: true, hint: "Follow a still-running Job of the same agent, task and session instead of starting another." },
  { key: "resources.requests.cpu", label: "CPU request", type: "text", hint: "Default 1000m." },
  { key: "resources.requests.memory", label: "Memory request", type: "text", hint: "Default 2Gi." },
  { key: "resources.limits.cpu", label: "CPU limit", type: "text", hint: "Default 4000m." },
  { key: "resources.limits.memory", label: "Memory limit", type: "text", hint: "Default 8Gi." },
  { key: "nodeSelector", label: "Node selector", type: "textarea", hint: "key=value per line (or a JSON object)." },
  { key: "tolerations", label: "Tolerations", type: "textarea", hint: "A JSON array of Kubernetes tolerations, e.g. [{\"key\":\"gpu\",\"operator\":\"Exists\"}]." },
  { key: "labels", label: "Extra labels", type: "textarea", hint: "key=value per line; paperclip.io/ and app.kubernetes.io/ keys are reserved." },
  { key: "enableRtk", label: "Truncate large tool output (RTK)", type: "toggle", default: false, hint: "Install a hook that truncates tool output over the byte limit below." },
  { key: "rtkMaxOutputBytes", label: "RTK max output bytes", type: "number", default: 50000, hint: "Tool output above this size is truncated (UTF-8 safe)." },
  { key: "mcpServers", label: "MCP servers", type: "textarea", hint: "The agent's own MCP servers as JSON, e.g. {\"docs\":{\"type\":\"http\",\"url\":\"https://docs.example/mcp\"}}; merged with Paperclip's runtime tools." },
  { key: "strictMcpConfig", label: "Only these MCP servers", type: "toggle", hint: "Pass --strict-mcp-config: ignore the user's and project's MCP servers." },
  { key: "environmentProbe", label: "Test environment probe", type: "select", options: [{ value: "off", label: "off" }, { value: "version", label: "version" }, { value: "hello", label: "hello" }], default: "off", hint: "\"Test environment\" also runs a short Job with this agent's image: claude --version, and for hello one turn against the API." },
];

export function getConfigSchema() {
  return { fields: FIELDS.map((f) => ({ ...f, ...(f.options ? { options: f.options.map((o) => ({ ...o })) } : {}) })) };
}
