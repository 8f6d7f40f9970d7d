/** The one-line status of the widget (plain text, from the `status`, `message`, ... traits). */

export interface StatusInput {
  /** "empty", "running", "done" or "error". */
  readonly status: string;
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
}

/** The status line: what runs or ran, progress while running, then notices and errors. */
export function statusLine(input: StatusInput): string {
  const parts: string[] = [];
  const model = input.modelName ? `${input.modelName}: ` : "";
  if (input.status === "running") {
    parts.push(`Running ${model}${Math.min(input.layersDone, input.layerCount)}/${input.layerCount} layers`);
  } else if (input.status === "done") {
    parts.push(`${model}${input.layerCount} layers × ${input.headCount} heads, query ${input.query}`);
  } else if (input.status === "error") {
    parts.push(`Error: ${input.message || "the run failed"}`);
  } else if (!input.message) {
    parts.push("No attention yet: run the widget on an image.");
  }
  if (input.message && input.status !== "error") parts.push(input.message);
  if (input.queryPending) parts.push("the maps still show the previous query until a running kernel recomputes them");
  if (input.dataError) parts.push(`could not read the data: ${input.dataError}`);
  return parts.join(" · ");
}
