// Paperclip UI parser for claude_k8s transcripts (contract §1.15, §2.5).
// One CommonJS file with no imports and no side effects: the host evaluates
// it in a Web Worker with new Function("exports","module","self","globalThis", …).
// Invariant: no function here throws, whatever the line.
"use strict";

function str(v) {
  return typeof v === "string" ? v : "";
}

function safeJson(v) {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? "" : s;
  } catch (_e) {
    return "";
  }
}

function toolResultContent(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    const parts = [];
    for (const p of content) {
      if (p && typeof p === "object" && typeof p.text === "string") parts.push(p.text);
    }
    return parts.join("\n");
  }
  return content === undefined || content === null ? "" : safeJson(content);
}

function num(v) {
  return typeof v === "number" && isFinite(v) ? v : 0;
}

function parseEvent(line, ts, toolNames) {
  const text = str(line);
  const trimmed = text.trim();
  if (!trimmed) return [];
  if (trimmed.indexOf("[paperclip]") === 0) {
    return [{ kind: "system", ts: ts, text: trimmed }];
  }
  let ev = null;
  if (trimmed.charAt(0) === "{") {
    try {
      ev = JSON.parse(trimmed);
    } catch (_e) {
      ev = null;
    }
  }
  if (!ev || typeof ev !== "object" || Array.isArray(ev)) {
    return [{ kind: "stdout", ts: ts, text: text }];
  }
  const type = ev.type;
  if (type === "system") {
    if (ev.subtype === "init") {
      return [{ kind: "init", ts: ts, model: str(ev.model) || "unknown", sessionId: str(ev.session_id) }];
    }
    return [{ kind: "system", ts: ts, text: "[system" + (ev.subtype ? ":" + str(ev.subtype) : "") + "]" }];
  }
  if (type === "assistant" || type === "user") {
    const msg = ev.message && typeof ev.message === "object" ? ev.message : {};
    const blocks = Array.isArray(msg.content) ? msg.content : typeof msg.content === "string" ? [{ type: "text", text: msg.content }] : [];
    const out = [];
    for (const b of blocks) {
      if (!b || typeof b !== "object") continue;
      if (b.type === "text" && typeof b.text === "string") {
        out.push({ kind: type === "assistant" ? "assistant" : "user", ts: ts, text: b.text });
      } else if (b.type === "thinking" && typeof b.thinking === "string") {
        out.push({ kind: "thinking", ts: ts, text: b.thinking });
      } else if (b.type === "tool_use") {
        const id = str(b.id) || str(b.tool_use_id);
        if (id && toolNames) toolNames[id] = str(b.name);
        out.push({ kind: "tool_call", ts: ts, name: str(b.name) || "tool", input: b.input === undefined ? {} : b.input, toolUseId: id || undefined });
      } else if (b.type === "tool_result") {
        const id = str(b.tool_use_id);
        const entry = { kind: "tool_result", ts: ts, toolUseId: id, content: toolResultContent(b.content), isError: b.is_error === true };
        if (toolNames && id && toolNames[id]) entry.toolName = toolNames[id];
        out.push(entry);
      }
    }
    if (out.length === 0) return [{ kind: "stdout", ts: ts, text: text }];
    return out;
  }
  if (type === "result") {
    const u = ev.usage && typeof ev.usage === "object" ? ev.usage : {};
    const errors = Array.isArray(ev.errors) ? ev.errors.map(function (e) { return typeof e === "string" ? e : safeJson(e); }) : [];
    return [{
      kind: "result",
      ts: ts,
      text: str(ev.result),
      inputTokens: num(u.input_tokens),
      outputTokens: num(u.output_tokens),
      cachedTokens: num(u.cache_read_input_tokens),
      costUsd: num(ev.total_cost_usd),
      subtype: str(ev.subtype),
      isError: ev.is_error === true,
      errors: errors,
    }];
  }
  return [{ kind: "stdout", ts: ts, text: text }];
}

function parseStdoutLine(line, ts) {
  try {
    return parseEvent(line, ts, null);
  } catch (_e) {
    return [{ kind: "stdout", ts: ts, text: String(line) }];
  }
}

function createStdoutParser() {
  let toolNames = {};
  return {
    parseLine: function (line, ts) {
      try {
        return parseEvent(line, ts, toolNames);
      } catch (_e) {
        return [{ kind: "stdout", ts: ts, text: String(line) }];
      }
    },
    reset: function () {
      toolNames = {};
    },
  };
}

module.exports = { parseStdoutLine: parseStdoutLine, createStdoutParser: createStdoutParser };
