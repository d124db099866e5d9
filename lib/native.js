// Loads the compiled Rust core (napi-rs). The generated loader `binding.cjs`
// looks for `claude-k8s.<platform>.node` next to it, then for the platform
// package `paperclip-adapter-claude-k8s-<platform>` (an optionalDependency).
// When neither exists we fail the import with one message that names the
// platform and says how to build — never a bare "Cannot find module".
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

function platformName() {
  let libc = "";
  if (process.platform === "linux") {
    const report = typeof process.report?.getReport === "function" ? process.report.getReport() : null;
    libc = report?.header?.glibcVersionRuntime ? "-gnu" : "-musl";
  }
  return `${process.platform}-${process.arch}${libc}`;
}

let binding;
try {
  binding = require("../binding.cjs");
} catch (cause) {
  const platform = platformName();
  throw new Error(
    `paperclip-adapter-claude-k8s: no native binary for ${platform}. ` +
      `Install the package with npm so that its optional dependency ` +
      `paperclip-adapter-claude-k8s-${platform} is pulled in, or build it from source ` +
      `(Rust toolchain and Node >= 20: "npm ci && npm run build" in a clone of the repository).`,
    { cause },
  );
}

export default binding;
