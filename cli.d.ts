export declare function formatClaudeStreamLine(raw: string): string | null;
export declare function printClaudeStreamEvent(raw: string, debug?: boolean): void;
