// The JS half of `execute(ctx)`: normalise whatever the host passes into one
// JSON string plus three always-async callbacks, then hand over to Rust.
//
// Why here and not in Rust: napi-rs converts arguments synchronously and
// throws on values serde_json cannot hold (`undefined` in arrays, NaN,
// functions, cycles). In an `async function` every such failure becomes a
// rejected promise, never a synchronous throw, and JSON.stringify already has
// the semantics a host expects of "data" (undefined → dropped/null, NaN → null,
// Date → ISO string).
import native from "./native.js";

/** JSON.stringify that replaces cycles (not shared references) and BigInts. */
export function toJson(value) {
  const ancestors = [];
  return JSON.stringify(value, function replacer(_key, v) {
    if (typeof v === "bigint") return v.toString();
    if (typeof v !== "object" || v === null) return v;
    // `this` is the object holding `v`: unwind to it, so `ancestors` is the
    // path from the root to `v`'s parent.
    while (ancestors.length > 0 && ancestors[ancestors.length - 1] !== this) ancestors.pop();
    if (ancestors.includes(v)) return "[Circular]";
    ancestors.push(v);
    return v;
  });
}

function describeThrown(e) {
  if (e instanceof Error) return e.message || e.name;
  if (typeof e === "string") return e;
  try {
    const s = JSON.stringify(e);
    if (s !== undefined) return s;
  } catch {
    /* fall through */
  }
  return String(e);
}

/**
 * Wraps a host callback so that it always returns a Promise that resolves to
 * undefined or rejects with an Error whose message says what was thrown
 * (napi-rs keeps only `Error.message`, so a rejected plain object would
 * otherwise lose its content).
 */
export function wrapCallback(name, fn) {
  if (fn === undefined || fn === null) return undefined;
  if (typeof fn !== "function") throw new TypeError(`execute(ctx): ctx.${name} must be a function`);
  return async (...args) => {
    // A callback that never settles would hold the run (and the pod's log)
    // forever: after the limit it counts as failed, and execute rejects.
    const limitMs = callbackTimeoutMs();
    let timer;
    const expired = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not settle within ${limitMs} ms`)), limitMs);
      timer.unref?.();
    });
    try {
      await Promise.race([Promise.resolve().then(() => fn(...args)), expired]);
    } catch (e) {
      throw new Error(describeThrown(e));
    } finally {
      clearTimeout(timer);
    }
  };
}

/** CLAUDE_K8S_CALLBACK_TIMEOUT_MS, default 5 minutes. */
function callbackTimeoutMs() {
  const v = Number(process.env.CLAUDE_K8S_CALLBACK_TIMEOUT_MS);
  return Number.isFinite(v) && v > 0 ? v : 300_000;
}

/** The data fields of the host's ctx; everything else (callbacks, newer hosts' extras) stays out. */
const DATA_FIELDS = ["runId", "agent", "runtime", "config", "context", "authToken"];

export async function execute(ctx) {
  if (ctx === null || typeof ctx !== "object") {
    throw new TypeError("execute(ctx): ctx must be an object");
  }
  if (typeof ctx.onLog !== "function") {
    throw new TypeError("execute(ctx): ctx.onLog must be a function");
  }
  const data = {};
  for (const key of DATA_FIELDS) data[key] = ctx[key];
  data.runtimeMcpServers = runtimeMcpServers(ctx.runtimeMcp);
  const json = toJson(data);
  const onLog = wrapCallback("onLog", ctx.onLog);
  const onMeta = wrapCallback("onMeta", ctx.onMeta);
  const onCancellationReady = wrapCallback("onCancellationReady", ctx.onCancellationReady);

  // Newer hosts cancel a run by aborting ctx.signal (and only once the adapter
  // has called ctx.onCancellationReady). The Rust core then deletes the Job
  // and returns `cancelled`, as for a cancel seen through the host's API.
  const signal = isAbortSignal(ctx.signal) ? ctx.signal : null;
  let cancelId = null;
  let onAbort = null;
  if (signal) {
    cancelId = native.createCancelToken();
    onAbort = () => native.cancelExecution(cancelId);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  }
  try {
    if (signal && onCancellationReady) await onCancellationReady();
    return await native.executeNative(json, onLog, onMeta, cancelId);
  } finally {
    if (onAbort) signal.removeEventListener("abort", onAbort);
  }
}

/**
 * Host 2026.916.1's runtime MCP servers: `ctx.runtimeMcp` is an object with a
 * `getServers()` method (not data), so it is read here. A host whose
 * getServers throws or returns junk gets a run without them, not a failed one.
 */
function runtimeMcpServers(access) {
  if (access === null || typeof access !== "object" || typeof access.getServers !== "function") return [];
  let servers;
  try {
    servers = access.getServers();
  } catch {
    return [];
  }
  if (!Array.isArray(servers)) return [];
  return servers
    .filter((s) => s !== null && typeof s === "object")
    .map(({ name, url, token, connectionId }) => ({ name, url, token, connectionId }));
}

function isAbortSignal(v) {
  return v !== null && typeof v === "object" && typeof v.addEventListener === "function" && typeof v.aborted === "boolean";
}
