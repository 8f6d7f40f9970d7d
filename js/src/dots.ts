/**
 * The link between the grid and a scatter of one dot per head (the `head_dots` trait, a bqplot
 * `Scatter`; see attnwidget/panel.py). Dot `i` is head `(i // head_count + 1, i % head_count + 1)`.
 * Selecting a dot selects its head and opens the overlay; selecting a head selects its dot.
 *
 * The link lives in the front-end, between the two models, so it works without a kernel: in a
 * saved notebook and in exported HTML, like ipywidgets' `jslink`.
 */
import type { GridTraits } from "./contract";
import { type WidgetModel, readCount, readShape, readViewState, saveTraits } from "./model";

/** The traits of bqplot's `Scatter` this link uses: the indices of the selected dots. */
export interface ScatterTraits {
  selected: Uint32Array | number[] | null;
}

/** The widget manager anywidget hands to `initialize` with the model. */
export interface ModelLookup {
  get_model(modelId: string): Promise<WidgetModel<ScatterTraits>>;
}

const MODEL_REFERENCE = "IPY_MODEL_";

/** The dot of head `[layer, head]` (1-based), or `null` without a selection. */
export function dotOfHead(selected: readonly [number, number] | null, headCount: number): number | null {
  if (!selected || headCount <= 0) return null;
  const [layer, head] = selected;
  if (layer < 1 || head < 1 || head > headCount) return null;
  return (layer - 1) * headCount + head - 1;
}

/** The head `[layer, head]` (1-based) of dot `index`. */
export function headOfDot(index: number, headCount: number): [number, number] {
  return [Math.floor(index / headCount) + 1, (index % headCount) + 1];
}

/** The first selected index of a bqplot `selected` value (`null`, a list or a typed array). */
export function firstSelected(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const indices = ArrayBuffer.isView(value) ? Array.from(value as Uint32Array) : Array.isArray(value) ? value : [];
  const first = indices[0];
  return typeof first === "number" && Number.isInteger(first) && first >= 0 ? first : null;
}

/** `values` with `value` added in order, or `values` itself when it is there already. */
function including(values: readonly number[], value: number): number[] | null {
  return values.includes(value) ? null : [...values, value].sort((a, b) => a - b);
}

/** Keeps the selections of `grid` and `dots` in step, both ways; returns the function that unlinks them. */
export function linkHeadDots(grid: WidgetModel, dots: WidgetModel<ScatterTraits>): () => void {
  const headCount = (): number => readCount(grid, "head_count");

  const dotSelected = (): void => {
    const index = firstSelected(dots.get("selected"));
    if (index === null || headCount() === 0) return; // a cleared dot keeps the grid's selection
    const [layer, head] = headOfDot(index, headCount());
    const selected = readViewState(grid).selected;
    if (selected?.[0] === layer && selected[1] === head) return; // the grid's own selection, echoed
    const traits: Partial<GridTraits> = { selected: [layer, head], overlay_open: true };
    const shape = readShape(grid);
    const layers = including(shape.layers, layer);
    const heads = including(shape.heads, head);
    if (layers) traits.layers = layers; // a head the grid does not show joins it
    if (heads) traits.heads = heads;
    saveTraits(grid, traits);
  };

  const headSelected = (): void => {
    const index = dotOfHead(readViewState(grid).selected, headCount());
    if (index === firstSelected(dots.get("selected"))) return;
    saveTraits(dots, { selected: index === null ? null : new Uint32Array([index]) });
  };

  dots.on("change:selected", dotSelected);
  grid.on("change:selected", headSelected);
  grid.on("change:head_count", headSelected);
  headSelected();
  return () => {
    dots.off("change:selected", dotSelected);
    grid.off("change:selected", headSelected);
    grid.off("change:head_count", headSelected);
  };
}

/**
 * Links `grid` to the scatter its `head_dots` trait names, and again whenever the trait changes;
 * returns the function that ends every link.
 */
export function followHeadDots(grid: WidgetModel, manager: ModelLookup | undefined): () => void {
  let unlink: (() => void) | null = null;
  let version = 0;
  const follow = (): void => {
    unlink?.();
    unlink = null;
    version += 1;
    const reference = grid.get("head_dots");
    if (!manager || typeof reference !== "string" || !reference.startsWith(MODEL_REFERENCE)) return;
    const current = version;
    manager.get_model(reference.slice(MODEL_REFERENCE.length)).then(
      (dots) => {
        if (current === version) unlink = linkHeadDots(grid, dots);
      },
      (error: unknown) => console.warn("attnwidget: the statistics panel is not linked to the grid", error),
    );
  };
  grid.on("change:head_dots", follow);
  follow();
  return () => {
    version += 1;
    grid.off("change:head_dots", follow);
    unlink?.();
  };
}
