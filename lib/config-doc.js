// agentConfigurationDoc (contract §1.3), corrected where 0.1.54's doc
// disagreed with what its code read. Every key the code reads is listed with
// its real default.
export const agentConfigurationDoc = `# claude_k8s agent configuration

Runs each heartbeat as one Claude Code turn in a Kubernetes Job. The Job's pod
runs \`claude --print - --output-format stream-json --verbose\`; its output is
streamed into the run log as it happens.

## Core
- \`model\` (string, default: the CLI's default) — passed as \`--model\`.
- \`effort\` (\`low\` | \`medium\` | \`high\`, default: none) — passed as \`--effort\`.
- \`maxTurnsPerRun\` (number, default **0 = no limit** when absent; the UI form pre-fills 1000) — \`--max-turns\`.
- \`dangerouslySkipPermissions\` (boolean, default **true**: Job pods are unattended, nobody can approve a prompt).
- \`instructionsFilePath\` (string) — agent instructions appended to the system prompt on a new session.
- \`extraArgs\` (string[]) — appended to the claude arguments.
- \`mcpServers\` — the agent's own MCP servers, as the CLI's \`--mcp-config\` has them (\`{"name": {"type": "http", "url": "…", "headers": {…}}}\` or \`{"name": {"command": "…", "args": […]}}\`), an object or its JSON text. They are merged with the host's runtime MCP servers (Paperclip's own tools, host 2026.916.1+) into one file that reaches the pod in the run's Secret, never in the Job's env; a host URL on localhost is re-pointed at the pod's \`PAPERCLIP_API_URL\`.
- \`environmentProbe\` (\`"version"\` | \`"hello"\`, default off) — makes the host's "Test environment" start a short probe Job with this agent's image, env and Secrets: \`claude --version\`, and for \`"hello"\` one turn of "Respond with hello." against the API. It reports \`claude\` missing from the image, an image the node cannot pull, a key the API refuses or an API the pod cannot reach, each as its own check with a hint; the probe Job is always deleted. \`helloProbeTimeoutSec\` (default 90) bounds it.
- \`strictMcpConfig\` (boolean, default false) — also pass \`--strict-mcp-config\`: the CLI then uses only those servers, not the user's or the project's.
- \`env\` (object of strings) — env vars for the claude container; they win over everything else.
- \`promptTemplate\` (string, default \`You are agent {{agent.id}} ({{agent.name}}). Continue your Paperclip work.\`).
- \`bootstrapPromptTemplate\` (string) — prepended only when no session is resumed.
- \`cwd\` (string) — working directory when the workspace gives none (default \`/paperclip\`).

## Kubernetes
- \`namespace\` (string) — default: the namespace Paperclip runs in; off-cluster, the kubeconfig context's namespace.
- \`image\` (string) — default: Paperclip's own image; **required** when Paperclip does not run in a pod (off-cluster mode).
- \`imagePullPolicy\` (default \`IfNotPresent\`).
- \`kubeconfig\` (path) — default: in-cluster service account, or \`KUBECONFIG\` / \`~/.kube/config\`.
- \`serviceAccountName\` (string) — the Job pod's ServiceAccount.
- \`runtimeClassName\` (string) — the Job pod's RuntimeClass (gVisor, Kata…); none by default.
- \`readOnlyRootFilesystem\` (boolean, default false) — both containers' root filesystem read-only, with a writable
  emptyDir at \`/tmp\`.
- \`egressPolicy\` (boolean, default false) — each run's pod gets a NetworkPolicy (owned by its Job) allowing egress
  only to DNS, the Paperclip API (Paperclip's pods, the API URL's port) and TCP 443 to public addresses — not cloud
  metadata, the apiserver or internal services. Needs a network plugin that enforces NetworkPolicy, and the verbs of
  \`deploy/rbac-egress.yaml\`. \`egressAllowCidrs\` (CIDRs, any port) and \`egressAllowPorts\` (more TCP ports to
  public addresses) widen it; an array, or values separated by commas or lines.
- \`automountServiceAccountToken\` (boolean) — default: **no token** in the pod when \`serviceAccountName\` is not set
  (the namespace's default account's token would be the agent's), the account's own setting when it is; \`true\` or
  \`false\` decides either way.
- \`resources\` — either the nested object \`{requests: {cpu, memory}, limits: {cpu, memory}}\` or the flat keys
  \`resources.requests.cpu\` (default \`1000m\`), \`resources.requests.memory\` (\`2Gi\`), \`resources.limits.cpu\` (\`4000m\`),
  \`resources.limits.memory\` (\`8Gi\`); a flat key wins over the nested value.
- \`nodeSelector\` — an object, a JSON object string, or \`key=value\` lines (\`#\` comments allowed).
- \`tolerations\` — an array, or a JSON array string (what the form's textarea sends); anything else is reported as an error.
- \`labels\` — extra Job labels, same forms as nodeSelector; \`paperclip.io/\` and \`app.kubernetes.io/\` keys are reserved and skipped.
- \`ttlSecondsAfterFinished\` (default 300), \`retainJobs\` (default false), \`reattachOrphanedJobs\` (default true).
- \`secretRef\` (default \`paperclip-secrets\`) — the Secret \`testEnvironment\` checks for.

## Output filtering
- \`enableRtk\` (default false) and \`rtkMaxOutputBytes\` (default 50000): truncate large tool output in the pod.

## Operational
- \`timeoutSec\` (default 0 = none) — the Job's \`activeDeadlineSeconds\`; the run fails with \`timeout\` after
  \`timeoutSec + graceSec\`.
- \`graceSec\` (default 60).
- \`nodeLostTimeoutSec\` (default 60) — once the node lifecycle controller marks the pod not ready because its node
  stopped reporting, how long to wait for the node to come back before the run fails with \`k8s_node_lost\`
  (0 = wait for the Job's own end).

## Inherited from Paperclip's own pod
When Paperclip runs in a pod (found through \`HOSTNAME\`), Jobs inherit its image, literal env and \`valueFrom\`
env (provider API keys, \`PAPERCLIP_API_URL\`), \`envFrom\` (expanded key by key into \`secretKeyRef\` /
\`configMapKeyRef\` entries), secret volumes, image pull secrets, DNS config and the PVC mounted at \`/paperclip\` —
**except the Paperclip server's own secrets**: the agent is untrusted, so \`PAPERCLIP_AGENT_JWT_SECRET\`,
\`BETTER_AUTH_SECRET\`, \`DATABASE_URL\`, \`DB_PASSWORD\`, \`PAPERCLIP_SECRETS_*\`, \`RESEND_API_KEY\`, OAuth client
secrets, \`PAPERCLIP_MANAGED_*_API_KEY\`, \`GITHUB_APP_PRIVATE_KEY\` and the rest of the README's list stay behind,
as env, as \`envFrom\` keys and as files of a secret volume; \`AWS_*\` too unless the agent selects Bedrock
(\`CLAUDE_CODE_USE_BEDROCK\` / \`ANTHROPIC_BEDROCK_BASE_URL\` in \`env\`, in Paperclip's pod or in the host's env). The
run's log names what was held back (names only). What \`env\` sets always arrives.
- \`withholdEnv\` — more names to hold back (an array, or names separated by commas or lines; \`PREFIX_*\` for a prefix).
- \`inheritServerSecrets\` (default false) — **opt-out**: inherit everything, server secrets included, as 0.1.54 did.
  The agent can then mint tokens for any agent and read the database; use it only for trusted prompts.
Off-cluster, nothing is inherited: set \`image\` and what the pod needs in \`env\`.

## Notes
- Sessions resume because \`HOME=/paperclip\` is the shared PVC: keep \`PAPERCLIP_HOME\` under \`/paperclip\` so
  skills and instructions (the prompt bundle) reach the pod too.
- The prompt, the run's agent token (\`PAPERCLIP_API_KEY\`), the wake payload and every env value whose name looks
  like a secret travel in the run's own Secret (\`<job>-prompt\`, owned by the Job, deleted with the run): the Job
  and pod specs hold neither the token nor the prompt. A \`busybox\` init container copies the prompt into an emptyDir.
`;
