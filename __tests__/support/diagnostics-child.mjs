// A host process of its own for __tests__/e2e/diagnostics.test.js: the
// subscriber is process-wide and read from the environment at the first run,
// so each case needs a fresh process. argv[2]: a JSON list of
// {ctx, abortOn?} runs, done one after the other; the results are printed
// on stdout as one JSON line; the subscriber writes to stderr.
import { execute } from "../../server.js";

const runs = JSON.parse(process.argv[2]);
const results = [];
for (const { ctx, abortOn } of runs) {
  const controller = new AbortController();
  const result = await execute({
    ...ctx,
    signal: controller.signal,
    onLog: async (_stream, chunk) => {
      if (abortOn && chunk.includes(abortOn)) controller.abort();
    },
    onMeta: async () => {},
    onSpawn: async () => {},
  });
  results.push(result);
}
process.stdout.write(`${JSON.stringify(results)}\n`);
