// A mock Anthropic Messages API for the real Claude Code CLI, on loopback.
// No dependencies. Scenarios are chosen by the base URL's path:
//
//   ANTHROPIC_BASE_URL=http://127.0.0.1:PORT/s/<scenario>[/<key>=<value>...]
//
// The CLI appends /v1/messages, so a request arrives as
// POST /s/<scenario>/<params...>/v1/messages?beta=true. Scenarios:
//   plain[/text=…]              a text answer
//   tool[/cmd=…|/cmd64=…]       a Bash tool_use (the CLI runs it), then a text answer
//                               (cmd64: the command as base64url, for one with slashes)
//   silence[/seconds=70]        wait N seconds, then answer
//   slow[/seconds=5/lines=5][/pad=N/every=K]
//                               N text blocks streamed over S seconds ("slow <i>";
//                               every K-th followed by " " and N x's: stream-json
//                               lines over the runtime's 16 KiB record size)
//   empty                       a message with no content and output_tokens 0
//   cut                         the connection is destroyed mid-answer
//   status/code=401|429|500|529[/retryAfter=S][/message=…]
//                               an HTTP error with the API's JSON error body
//                               (and a retry-after header: S, or 0 on 429/529)
//   refusal[/text=…]            a message ending with stop_reason "refusal"
//   blocks/n=3000               one message with N text blocks "line 000001"…
//   big/mib=100                 text blocks totalling about N MiB
//   max-turns                   always asks for another tool call
//   mcp/tool=…[/input=<json>]   calls the MCP tool mcp__*__<tool>, then says what it returned
//   stall[/output=N]            one text block (message_start says N output
//                               tokens), then the stream hangs: the CLI never
//                               prints a result (for kill/OOM tests)
// GET /v1/models lists two models. Every request is recorded: GET /_requests, DELETE /_requests.
import http from "node:http";

function sse(res, event, data) {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/**
 * Waits `ms`, or less when the client goes away first: then the timer is
 * cleared, so that a cancelled run's wait (silence: 70 s) does not hold the
 * test process open after the server has closed.
 */
function pause(res, ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      res.off("close", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    res.once("close", done);
  });
}

let counter = 0;
const msgId = () => `msg_mock_${Date.now().toString(36)}_${(counter++).toString(36)}`;

function parseScenario(path) {
  // /s/<name>/<k=v>/.../v1/messages
  const parts = path.split("?")[0].split("/").filter(Boolean);
  if (parts[0] !== "s") return { name: "plain", params: {} };
  const name = parts[1] ?? "plain";
  const params = {};
  for (const p of parts.slice(2)) {
    if (p === "v1") break;
    const i = p.indexOf("=");
    if (i > 0) params[decodeURIComponent(p.slice(0, i))] = decodeURIComponent(p.slice(i + 1));
  }
  return { name, params };
}

/** Streams one assistant message made of `blocks` ({type:"text",text} | {type:"tool_use",name,input}). */
async function streamMessage(res, model, blocks, { stopReason, outputTokens, delayMs = 0 } = {}) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
  const id = msgId();
  sse(res, "message_start", {
    type: "message_start",
    message: { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null,
      usage: { input_tokens: 12, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } },
  });
  let i = 0;
  for (const b of blocks) {
    if (delayMs) await pause(res, delayMs);
    if (res.destroyed) return;
    if (b.type === "text") {
      sse(res, "content_block_start", { type: "content_block_start", index: i, content_block: { type: "text", text: "" } });
      sse(res, "content_block_delta", { type: "content_block_delta", index: i, delta: { type: "text_delta", text: b.text } });
    } else {
      sse(res, "content_block_start", { type: "content_block_start", index: i, content_block: { type: "tool_use", id: b.id, name: b.name, input: {} } });
      sse(res, "content_block_delta", { type: "content_block_delta", index: i, delta: { type: "input_json_delta", partial_json: JSON.stringify(b.input) } });
    }
    sse(res, "content_block_stop", { type: "content_block_stop", index: i });
    i++;
  }
  const stop = stopReason ?? (blocks.some((b) => b.type === "tool_use") ? "tool_use" : "end_turn");
  sse(res, "message_delta", { type: "message_delta", delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: outputTokens ?? Math.max(1, blocks.length * 5) } });
  sse(res, "message_stop", { type: "message_stop" });
  res.end();
}

function hasToolResult(body) {
  const last = Array.isArray(body?.messages) ? body.messages[body.messages.length - 1] : null;
  return Array.isArray(last?.content) && last.content.some((c) => c?.type === "tool_result");
}

async function answer(req, res, body, scenario) {
  const model = body?.model ?? "claude-sonnet-4-6";
  const { name, params } = scenario;
  const toolId = () => `toolu_mock_${(counter++).toString(36)}`;
  switch (name) {
    case "plain":
      return streamMessage(res, model, [{ type: "text", text: params.text ?? "Hello from mock." }]);
    case "tool":
      if (hasToolResult(body)) return streamMessage(res, model, [{ type: "text", text: params.text ?? "The command ran." }]);
      return streamMessage(res, model, [
        { type: "text", text: "Let me run that." },
        { type: "tool_use", id: toolId(), name: "Bash", input: { command: params.cmd64 ? Buffer.from(params.cmd64, "base64url").toString() : (params.cmd ?? "uname -s"), description: "Run a command" } },
      ]);
    case "mcp": {
      // Calls the MCP tool whose name ends in __<tool> (the CLI names them
      // mcp__<server>__<tool>) with `input`, then answers with what it
      // returned. While the CLI's MCP servers are still connecting, it waits
      // for them with the CLI's WaitForMcpServers tool (at most 3 times).
      const wanted = params.tool ?? "echo";
      const msgs = Array.isArray(body?.messages) ? body.messages : [];
      const uses = msgs.filter((m) => m.role === "assistant").flatMap((m) => (Array.isArray(m.content) ? m.content : [])).filter((c) => c?.type === "tool_use");
      const last = msgs.at(-1);
      const result = Array.isArray(last?.content) ? last.content.find((c) => c?.type === "tool_result") : null;
      const lastUse = result ? uses.find((u) => u.id === result.tool_use_id) : null;
      if (lastUse?.name?.startsWith("mcp__")) {
        const out = typeof result.content === "string" ? result.content : (result.content ?? []).map((c) => c?.text ?? "").join("");
        return streamMessage(res, model, [{ type: "text", text: `The tool said: ${out}` }]);
      }
      const names = (body?.tools ?? []).map((t) => t?.name).filter(Boolean);
      const name = names.find((n) => n.startsWith("mcp__") && n.endsWith(`__${wanted}`));
      if (name) return streamMessage(res, model, [{ type: "tool_use", id: toolId(), name, input: params.input ? JSON.parse(params.input) : {} }]);
      const waits = uses.filter((u) => u.name === "WaitForMcpServers").length;
      if (names.includes("WaitForMcpServers") && waits < 3) {
        return streamMessage(res, model, [{ type: "tool_use", id: toolId(), name: "WaitForMcpServers", input: {} }]);
      }
      return streamMessage(res, model, [{ type: "text", text: `No MCP tool ${wanted} among: ${names.join(", ")}` }]);
    }
    case "max-turns":
      return streamMessage(res, model, [{ type: "tool_use", id: toolId(), name: "Bash", input: { command: "echo again", description: "again" } }]);
    case "silence": {
      const ms = Number(params.seconds ?? 70) * 1000;
      await pause(res, ms);
      if (res.destroyed) return;
      return streamMessage(res, model, [{ type: "text", text: params.text ?? "Back after a long silence." }]);
    }
    case "slow": {
      const lines = Number(params.lines ?? 5);
      const ms = (Number(params.seconds ?? 5) * 1000) / lines;
      const pad = Number(params.pad ?? 0);
      const every = Number(params.every ?? 1);
      const text = (i) => (pad && (i + 1) % every === 0 ? `slow ${i + 1} ${"x".repeat(pad)}` : `slow ${i + 1}`);
      const blocks = Array.from({ length: lines }, (_, i) => ({ type: "text", text: text(i) }));
      return streamMessage(res, model, blocks, { delayMs: ms });
    }
    case "stall": {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const output = Number(params.output ?? 5);
      sse(res, "message_start", { type: "message_start", message: { id: msgId(), type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: output } } });
      sse(res, "content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } });
      sse(res, "content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: params.text ?? "Working on it" } });
      sse(res, "content_block_stop", { type: "content_block_stop", index: 0 });
      // Never finishes: the connection stays open until the client goes away.
      return;
    }
    case "refusal":
      // The API's policy refusal: a normal message ending with stop_reason "refusal".
      return streamMessage(res, model, params.text ? [{ type: "text", text: params.text }] : [], { stopReason: "refusal", outputTokens: 1 });
    case "empty":
      return streamMessage(res, model, [], { stopReason: "end_turn", outputTokens: 0 });
    case "cut": {
      res.writeHead(200, { "content-type": "text/event-stream" });
      sse(res, "message_start", { type: "message_start", message: { id: msgId(), type: "message", role: "assistant", model, content: [], stop_reason: null, usage: { input_tokens: 5, output_tokens: 1 } } });
      sse(res, "content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } });
      sse(res, "content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Partial answ" } });
      setTimeout(() => res.destroy(), 50);
      return;
    }
    case "status": {
      const code = Number(params.code ?? 500);
      const type = { 401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error", 400: "invalid_request_error" }[code] ?? "api_error";
      const message = { 401: "invalid x-api-key", 429: "Number of requests has exceeded your rate limit", 529: "Overloaded" }[code] ?? "Internal server error";
      const retryAfter = params.retryAfter ?? (code === 429 || code === 529 ? "0" : undefined);
      res.writeHead(code, { "content-type": "application/json", ...(retryAfter !== undefined ? { "retry-after": retryAfter } : {}) });
      res.end(JSON.stringify({ type: "error", error: { type, message: params.message ?? message } }));
      return;
    }
    case "blocks": {
      const n = Number(params.n ?? 1000);
      const blocks = Array.from({ length: n }, (_, i) => ({ type: "text", text: `line ${String(i + 1).padStart(6, "0")}` }));
      return streamMessage(res, model, blocks);
    }
    case "big": {
      const mib = Number(params.mib ?? 10);
      const chunk = "x".repeat(64 * 1024);
      const n = Math.max(1, Math.round((mib * 1024 * 1024) / chunk.length));
      const blocks = Array.from({ length: n }, (_, i) => ({ type: "text", text: `${i} ${chunk}` }));
      return streamMessage(res, model, blocks);
    }
    default:
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ type: "error", error: { type: "not_found_error", message: `unknown scenario ${name}` } }));
  }
}

export async function startMockAnthropic({ port = 0, host = "127.0.0.1" } = {}) {
  const requests = [];
  const sockets = new Set();
  const server = http.createServer(async (req, res) => {
    let raw = "";
    req.setEncoding("utf8");
    for await (const chunk of req) raw += chunk;
    const url = req.url ?? "/";
    if (url === "/_requests") {
      if (req.method === "DELETE") requests.length = 0;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(requests));
      return;
    }
    let body = null;
    try {
      body = raw ? JSON.parse(raw) : null;
    } catch {
      body = null;
    }
    const headers = { ...req.headers };
    delete headers["x-api-key"];
    delete headers.authorization;
    requests.push({ method: req.method, path: url, headers, body });
    const scenario = parseScenario(url);
    if (req.method === "POST" && /\/v1\/messages(\?|$)/.test(url)) {
      if (url.includes("/count_tokens")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ input_tokens: 12 }));
        return;
      }
      try {
        await answer(req, res, body, scenario);
      } catch (e) {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      }
      return;
    }
    if (req.method === "GET" && /\/v1\/models(\?|$)/.test(url)) {
      // The Models API, for the adapter's listModels.
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ data: [
        { type: "model", id: "claude-mock-9", display_name: "Claude Mock 9", created_at: "2026-11-01T00:00:00Z" },
        { type: "model", id: "claude-sonnet-4-6", display_name: "Claude Sonnet 4.6 (API)", created_at: "2026-01-01T00:00:00Z" },
      ], has_more: false, first_id: "claude-mock-9", last_id: "claude-sonnet-4-6" }));
      return;
    }
    // Anything else the CLI asks at start-up: an empty, successful answer.
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{}");
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  const actual = server.address().port;
  return {
    port: actual,
    url: `http://${host}:${actual}`,
    requests: () => requests.slice(),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf("--port");
  const m = await startMockAnthropic({ port: i > 0 ? Number(process.argv[i + 1]) : 0 });
  console.log(`listening ${m.url}`);
}
