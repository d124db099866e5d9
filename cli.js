// printClaudeStreamEvent / formatClaudeStreamLine (contract §1.15): a
// terminal rendering of Claude's stream-json lines. No dependencies; colours
// follow NO_COLOR / FORCE_COLOR and whether stdout is a TTY.
const useColor = (() => {
  const env = typeof process !== "undefined" ? process.env : {};
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return Boolean(process.stdout?.isTTY);
})();
const paint = (code) => (s) => (useColor ? `\x1b[${code}m${s}\x1b[0m` : String(s));
const c = { dim: paint(2), bold: paint(1), red: paint(31), green: paint(32), yellow: paint(33), blue: paint(34), magenta: paint(35), cyan: paint(36) };

function compact(v, max = 200) {
  let s;
  try {
    s = typeof v === "string" ? v : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  if (s === undefined) s = "";
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function toolResultText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p?.text === "string" ? p.text : "")).filter(Boolean).join("\n");
  return compact(content);
}

/** One line of stream-json (or any text) as a printable string, or null to print nothing. */
export function formatClaudeStreamLine(raw) {
  const line = String(raw ?? "").trim();
  if (!line) return null;
  let ev;
  try {
    ev = JSON.parse(line);
  } catch {
    return line;
  }
  if (ev === null || typeof ev !== "object" || Array.isArray(ev)) return line;
  switch (ev.type) {
    case "system":
      if (ev.subtype === "init") return c.blue(`Claude initialized (model: ${ev.model ?? "unknown"}, session: ${ev.session_id ?? "unknown"})`);
      return c.dim(`[system${ev.subtype ? `:${ev.subtype}` : ""}]`);
    case "assistant": {
      const blocks = Array.isArray(ev.message?.content) ? ev.message.content : [];
      const out = [];
      for (const b of blocks) {
        if (b?.type === "text" && typeof b.text === "string" && b.text.trim()) out.push(c.green(`assistant: ${b.text}`));
        else if (b?.type === "thinking" && typeof b.thinking === "string" && b.thinking.trim()) out.push(c.dim(`thinking: ${b.thinking}`));
        else if (b?.type === "tool_use") out.push(c.yellow(`tool_call: ${b.name ?? "tool"} ${compact(b.input ?? {})}`));
      }
      return out.length ? out.join("\n") : null;
    }
    case "user": {
      const blocks = Array.isArray(ev.message?.content) ? ev.message.content : [];
      const out = [];
      for (const b of blocks) {
        if (b?.type === "tool_result") {
          const text = compact(toolResultText(b.content), 500);
          out.push(b.is_error ? c.red(`tool_error: ${text}`) : c.cyan(`tool_result: ${text}`));
        } else if (b?.type === "text" && typeof b.text === "string") out.push(c.magenta(`user: ${b.text}`));
      }
      return out.length ? out.join("\n") : null;
    }
    case "result": {
      const u = ev.usage ?? {};
      const cost = typeof ev.total_cost_usd === "number" ? ` cost=$${ev.total_cost_usd.toFixed(6)}` : "";
      const head = ev.is_error || (ev.subtype && ev.subtype !== "success") ? c.red : c.bold;
      const text = typeof ev.result === "string" && ev.result.trim() ? `\n${ev.result}` : Array.isArray(ev.errors) && ev.errors.length ? `\n${ev.errors.map((e) => compact(e)).join("\n")}` : "";
      return head(`result: ${ev.subtype ?? "unknown"} tokens in=${u.input_tokens ?? 0} out=${u.output_tokens ?? 0} cached=${u.cache_read_input_tokens ?? 0}${cost}`) + text;
    }
    default:
      return c.dim(`[${ev.type ?? "event"}] ${compact(ev)}`);
  }
}

/** Prints one stream-json line; with `debug`, unparsable and unknown lines are shown raw too. */
export function printClaudeStreamEvent(raw, debug = false) {
  const text = formatClaudeStreamLine(raw);
  if (text !== null) console.log(text);
  else if (debug && String(raw ?? "").trim()) console.log(c.dim(String(raw)));
}
