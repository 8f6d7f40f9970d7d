/** The one-line status of the widget (plain text, from the `status`, `message`, ... traits). */
import type { Status } from "./contract";

export interface StatusInput {
  readonly status: Status;
  readonly message: string;
  readonly modelName: string;
  readonly layersDone: number;
  readonly layerCount: number;
  readonly headCount: number;
  /** The query, described ("CLS", "patch (3, 4)", ...). */
  readonly query: string;
  /** A problem reading the data, "" when none. */
  readonly dataError: string;
  /** A new query waits for the kernel. */
  readonly queryPending: boolean;
  /** Bytes the widget adds to a notebook saved with widget state; 0 when unknown. */
  readonly savedBytes: number;
  /** The token x token view is shown but the state holds no matrices (`saved_detail` "maps"). */
  readonly matricesMissing: boolean;
}

/** The status line: what runs or ran, progress while running, then notices and errors. */
export function statusLine(input: StatusInput): string {
  const parts: string[] = [];
  const model = input.modelName ? `${input.modelName}: ` : "";
  if (input.status === "running") {
    parts.push(`Running ${model}${Math.min(input.layersDone, input.layerCount)}/${input.layerCount} layers`);
  } else if (input.status === "done") {
    parts.push(`${model}${input.layerCount} layers × ${input.headCount} heads, query ${input.query}`);
    if (input.savedBytes > 0) parts.push(`${formatBytes(input.savedBytes)} in a saved notebook`);
  } else if (input.status === "error") {
    // The kernel starts its error messages with "error:" (they also show while a previous grid stays).
    parts.push(`Error: ${input.message.replace(/^error:\s*/i, "") || "the run failed"}`);
  } else if (!input.message) {
    parts.push("No attention yet: run the widget on an image.");
  }
  if (input.message && input.status !== "error") parts.push(input.message);
  if (input.matricesMissing) {
    parts.push('no token × token matrices are kept (saved_detail "maps"): open a tile to get one from a running kernel');
  }
  if (input.queryPending) parts.push("the maps still show the previous query until a running kernel recomputes them");
  if (input.dataError) parts.push(`could not read the data: ${input.dataError}`);
  return parts.join(" · ");
}

/** "812 kB", "5.6 MB": decimal units, as file browsers show sizes. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${Math.round(bytes)} B`;
  if (bytes < 1e6) return `${Math.round(bytes / 1000)} kB`;
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
