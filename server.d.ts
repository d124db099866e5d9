import type {
  AdapterExecutionContext,
  AdapterExecutionResult,
  AdapterEnvironmentTestContext,
  AdapterEnvironmentTestResult,
  AdapterSessionCodec,
  AdapterSessionManagement,
  AdapterModel,
  AdapterSkillContext,
  AdapterSkillSnapshot,
  AdapterConfigSchema,
  ServerAdapterModule,
} from "./index.js";

export declare const type: "claude_k8s";
export declare const sessionManagement: AdapterSessionManagement;
export declare const sessionCodec: AdapterSessionCodec;
export declare function createServerAdapter(): ServerAdapterModule;
export declare function execute(ctx: AdapterExecutionContext): Promise<AdapterExecutionResult>;
export declare function testEnvironment(ctx: AdapterEnvironmentTestContext): Promise<AdapterEnvironmentTestResult>;
export declare function listSkills(ctx: AdapterSkillContext): Promise<AdapterSkillSnapshot>;
export declare function syncSkills(ctx: AdapterSkillContext, desiredSkills: string[]): Promise<AdapterSkillSnapshot>;
export declare function listModels(): Promise<AdapterModel[]>;
export declare function refreshModels(): Promise<AdapterModel[]>;
export declare function getConfigSchema(): AdapterConfigSchema;
