// A TypeScript consumer typed against @paperclipai/adapter-utils: it must
// compile against this package's index.d.ts (the host's own types).
import type {
  AdapterExecutionContext,
  AdapterExecutionResult,
  AdapterEnvironmentTestContext,
  AdapterEnvironmentTestResult,
  AdapterSessionCodec,
  AdapterModel,
  ServerAdapterModule,
} from "@paperclipai/adapter-utils";
import { createServerAdapter, type as adapterType, models, agentConfigurationDoc } from "paperclip-adapter-claude-k8s";

const adapter = createServerAdapter();
// Our module is assignable to the host's module type…
const asHost: ServerAdapterModule = adapter;
// …and the host's ctx and result types flow through execute.
async function heartbeat(ctx: AdapterExecutionContext): Promise<AdapterExecutionResult> {
  return adapter.execute(ctx);
}
async function check(ctx: AdapterEnvironmentTestContext): Promise<AdapterEnvironmentTestResult> {
  return asHost.testEnvironment(ctx);
}
const codec: AdapterSessionCodec = adapter.sessionCodec;
const list: AdapterModel[] = models;
const t: string = adapterType;
const doc: string = agentConfigurationDoc;
export { heartbeat, check, codec, list, t, doc };
