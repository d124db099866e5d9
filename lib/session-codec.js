// sessionCodec (contract §1.11): what Paperclip stores between heartbeats to
// resume Claude's session. Accepts camelCase and snake_case aliases, trims
// strings, ignores blanks; no session id → null. Output is camelCase.
const FIELDS = [
  ["sessionId", ["sessionId", "session_id"]],
  ["cwd", ["cwd", "workdir", "folder"]],
  ["workspaceId", ["workspaceId", "workspace_id"]],
  ["repoUrl", ["repoUrl", "repo_url"]],
  ["repoRef", ["repoRef", "repo_ref"]],
  ["promptBundleKey", ["promptBundleKey", "prompt_bundle_key"]],
];

function normalise(raw) {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return null;
  const out = {};
  for (const [key, aliases] of FIELDS) {
    for (const alias of aliases) {
      const v = raw[alias];
      if (typeof v === "string" && v.trim().length > 0) {
        out[key] = v.trim();
        break;
      }
    }
  }
  return out.sessionId ? out : null;
}

export const sessionCodec = {
  deserialize(raw) {
    return normalise(raw);
  },
  serialize(params) {
    return normalise(params);
  },
  getDisplayId(params) {
    if (params === null || typeof params !== "object") return null;
    const v = params.sessionId ?? params.session_id;
    return typeof v === "string" && v.length > 0 ? v : null;
  },
};
