/**
 * The kernel's custom messages (their shapes are in contract.ts), read from what the comm delivers:
 * a message of one of their types with a missing or odd field is an error naming that field.
 */
import type { KernelMessage } from "./contract";

const KERNEL_MESSAGE_TYPES: readonly string[] = ["layers", "head", "region"] satisfies KernelMessage["type"][];

/** True when `message` has the type of one of the kernel's messages (other messages are not the widget's). */
export function isKernelMessage(message: unknown): message is { type: KernelMessage["type"] } {
  return typeof message === "object" && message !== null && KERNEL_MESSAGE_TYPES.includes(String((message as { type?: unknown }).type));
}

/** The kernel's message, its fields checked; throws when one is missing or odd. */
export function readKernelMessage(message: { type: KernelMessage["type"] }): KernelMessage {
  const fields = message as Record<string, unknown>;
  const what = `${message.type} message`;
  const count = (name: string): number => nonNegative(fields[name], `${what}: ${name}`);
  const span = (name: string): [number, number] => {
    const value = fields[name];
    if (!Array.isArray(value) || value.length !== 2) throw new Error(`${what}: ${name} must be [first, stop]`);
    return [nonNegative(value[0], `${what}: ${name}`), nonNegative(value[1], `${what}: ${name}`)];
  };
  switch (message.type) {
    case "layers":
      return { type: "layers", run_id: count("run_id"), first: count("first"), count: count("count") };
    case "head": {
      const query = fields.query;
      if (!Array.isArray(query)) throw new Error(`${what}: query must be a list of tokens`);
      return {
        type: "head",
        run_id: count("run_id"),
        layer: count("layer"),
        head: count("head"),
        height: count("height"),
        width: count("width"),
        query: query.map((token) => nonNegative(token, `${what}: query`)),
      };
    }
    case "region":
      return {
        type: "region",
        run_id: count("run_id"),
        layer: count("layer"),
        head: count("head"),
        rows: span("rows"),
        columns: span("columns"),
        height: count("height"),
        width: count("width"),
      };
  }
}

function nonNegative(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new Error(`${what}: expected a non-negative integer, got ${JSON.stringify(value)}`);
  }
  return value;
}
