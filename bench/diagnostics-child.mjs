// A host process of its own for the bench's `diagnostics` section: the
// subscriber is process-wide and read from the environment at the first run,
// so each setting needs a fresh process. argv[2]: a JSON list of ctxs, run
// one after the other; prints one JSON line: per run, wall and this
// process's CPU (user+system) in ms, and the bytes of container output.
import { execute } from "../server.js";

const ctxs = JSON.parse(process.argv[2]);
const runs = [];
for (const ctx of ctxs) {
  let bytes = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await execute({
    ...ctx,
    onLog: async (stream, chunk) => {
      if (stream === "stdout" && !chunk.startsWith("[paperclip]")) bytes += Buffer.byteLength(chunk);
    },
    onMeta: async () => {},
    onSpawn: async () => {},
  });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  runs.push({ wallMs, cpuMs: (cpu.user + cpu.system) / 1000, bytes, exitCode: result.exitCode, errorCode: result.errorCode ?? null });
}
process.stdout.write(`${JSON.stringify(runs)}\n`);
