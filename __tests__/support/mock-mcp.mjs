// A minimal MCP server (streamable HTTP, JSON answers — as Paperclip's own
// /api/mcp/project-tools is) for the Claude CLI in a pod. Every path is a
// server whose one tool is named after it: POST /echo → tool "echo", which
// answers "echo: <text>". Calls are recorded with the Authorization header
// they came with; with `token` set, any other header gets 401.
import http from "node:http";

export async function startMockMcp({ token, host = "127.0.0.1" } = {}) {
  const calls = [];
  const sockets = new Set();
  const server = http.createServer(async (req, res) => {
    let raw = "";
    req.setEncoding("utf8");
    for await (const chunk of req) raw += chunk;
    const tool = (req.url ?? "/").split("?")[0].replace(/^\/+|\/+$/g, "") || "echo";
    if (req.method !== "POST") {
      res.writeHead(405, { allow: "POST" });
      res.end();
      return;
    }
    if (token && req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "bad token" }));
      return;
    }
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      res.writeHead(400);
      res.end();
      return;
    }
    const reply = (result) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: msg.id, result }));
    };
    switch (msg.method) {
      case "initialize":
        return reply({ protocolVersion: msg.params?.protocolVersion ?? "2025-03-26", capabilities: { tools: { listChanged: false } }, serverInfo: { name: `mock-${tool}`, version: "1" } });
      case "tools/list":
        return reply({ tools: [{ name: tool, description: `The ${tool} tool`, inputSchema: { type: "object", properties: { text: { type: "string" } } } }] });
      case "tools/call": {
        const args = msg.params?.arguments ?? {};
        calls.push({ server: tool, tool: msg.params?.name, arguments: args, authorization: req.headers.authorization ?? null });
        return reply({ content: [{ type: "text", text: `${tool}: ${args.text ?? ""}` }] });
      }
      default:
        if (msg.id === undefined) {
          res.writeHead(202);
          res.end();
          return;
        }
        return reply({});
    }
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, host, resolve));
  const url = `http://${host}:${server.address().port}`;
  return {
    url,
    calls: () => calls.slice(),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
