/**
 * What the overlay shows, as an `OverlayScene`, from the model's traits and the data store: a
 * method's map for the whole input, or the selected head's map or matrix (exact values from the
 * kernel where they arrived, else the grid's), zoomed into a region of the matrix where one was
 * chosen. Asks the kernel (through the store) for what it lacks; draws nothing.
 */
import { colormap } from "./colormaps";
import { type Method, VALUE_KIND_LABELS } from "./contract";
import { pendingNotice, valuesNote, withValueKind } from "./captions";
import { methodLabel, readExplanation, readMaskMass } from "./methods";
import { type ViewState, type WidgetModel, readPicture, readPooling, readQuery } from "./model";
import { centredIf, isDiverging, valueRange } from "./normalize";
import type { OverlayScene } from "./overlay";
import type { AttentionStore, TileSource } from "./store";
import { defaultQuery, sameQuery } from "./tokens";
import { type MatrixWindow, type TokenRegion, cutRegion, wholeMatrix } from "./window";

/** Where scenes come from, and the side of the square their picture fits into (CSS pixels). */
export interface SceneSources {
  readonly model: WidgetModel;
  readonly store: AttentionStore;
  readonly maxSide: number;
}

/** A region of the matrix zoomed into, for the head it was chosen on. */
export interface Zoom {
  readonly layer: number;
  readonly head: number;
  readonly region: TokenRegion;
}

/** The selected tile in the grid's current tiles, with the grid's colour ranges and caption. */
export interface SelectedTile {
  readonly source: TileSource;
  readonly ranges: Float32Array;
  readonly tile: number;
  readonly caption: string;
}

/** What every scene takes alike from the model, the store and the view's state. */
type SharedFields = "shape" | "picture" | "lut" | "colormap" | "alpha" | "interpolation" | "query" | "canResetQuery" | "maxSide" | "maskMass" | "pooling";

function sharedFields({ model, store, maxSide }: SceneSources, state: ViewState): Pick<OverlayScene, SharedFields> {
  const shape = store.shape;
  const query = readQuery(model);
  return {
    shape,
    picture: readPicture(model),
    lut: colormap(state.colormap),
    colormap: state.colormap,
    alpha: state.alpha,
    interpolation: state.interpolation,
    query,
    canResetQuery: !sameQuery(query, defaultQuery(shape)),
    maxSide,
    maskMass: readMaskMass(model),
    pooling: readPooling(model),
  };
}

/** The overlay's view of `method`'s map, computed by the kernel for the whole input. */
export function methodScene(sources: SceneSources, state: ViewState, method: Method, explanationVersion: number): OverlayScene {
  const { model, store } = sources;
  const explanation = readExplanation(model, store.shape.gh * store.shape.gw);
  const label = methodLabel(method);
  return {
    ...sharedFields(sources, state),
    mode: "query",
    layer: state.selected?.[0] ?? 0,
    head: state.selected?.[1] ?? 0,
    map: explanation?.values ?? null,
    specials: null,
    matrix: null,
    range: centredIf(isDiverging(state.colormap), explanation ? valueRange(explanation.values) : null),
    rangeCaption: "colour range: this map",
    valuesNote: explanation ? "exact values" : "waiting for the kernel",
    notice: explanation ? "" : `The ${label} map is computed by a running kernel.`,
    key: `${store.version}|method|${method}|${explanationVersion}|${state.colormap}|${state.interpolation}`,
    method,
    methodTitle: explanation?.title || label,
    valueLabel: "attention",
  };
}

/**
 * The overlay's view of the selected head, and the zoom that still holds for it (null where `zoom`
 * was chosen on another head or lies outside the matrix).
 */
export function headScene(sources: SceneSources, state: ViewState, selected: SelectedTile, zoom: Zoom | null): { scene: OverlayScene; zoom: Zoom | null } {
  const { store } = sources;
  const shape = store.shape;
  const [layer, head] = state.selected ?? [0, 0];
  const { source, ranges, tile } = selected;
  const exact = store.exactHead(layer, head);
  const queryView = state.view === "query";
  const exactValues = (queryView ? exact?.map : exact?.matrix) ?? null;
  const values = exactValues ?? (source.has(tile) ? source.values(tile).slice() : null);
  const gridRange: [number, number] | null = Number.isNaN(ranges[tile * 2]) ? null : [ranges[tile * 2], ranges[tile * 2 + 1]];
  const [height, width] = exact?.matrix ? [exact.height, exact.width] : [source.height, source.width];
  const whole = !queryView && values ? wholeMatrix(values, height, width, shape.queryCount, shape.tokenCount) : null;
  const holds = zoom !== null && whole !== null && zoom.layer === layer && zoom.head === head && zoom.region.rows[1] <= shape.queryCount && zoom.region.columns[1] <= shape.tokenCount;
  const zoomed = holds && whole ? zoomedWindow(sources, whole, exactValues !== null, zoom) : { window: null, notice: "" };
  const window = zoomed.window ?? whole;
  const shared = sharedFields(sources, state);
  const scene: OverlayScene = {
    ...shared,
    mode: state.view,
    layer,
    head,
    map: queryView ? values : null,
    specials: store.specials(tile),
    matrix: window,
    range: centredIf(isDiverging(state.colormap), zoomed.window ? valueRange(zoomed.window.values) : exactValues && state.normalize === "head" ? valueRange(exactValues) : gridRange),
    rangeCaption: zoomed.window ? withValueKind(state, "colour range: this region") : selected.caption,
    valuesNote: valuesNote(exactValues !== null || zoomed.window !== null, queryView, store.mapsSource === "local", window, shape, shared.pooling),
    notice: zoomed.notice || (store.queryPending ? pendingNotice(shape) : ""),
    key: `${store.version}|${state.view}|${state.colormap}|${state.normalize}|${state.interpolation}|${layer},${head}|${exactValues ? "exact" : "8bit"}`,
    method: "attention",
    methodTitle: "",
    valueLabel: state.valueKind === "attention" ? "attention" : VALUE_KIND_LABELS[state.valueKind],
  };
  return { scene, zoom: holds ? zoom : null };
}

/**
 * The zoomed-in window of a head: cut here from an exact matrix of one token a cell, else the
 * kernel's reply (asked for now, with a notice until it arrives).
 */
function zoomedWindow({ model, store }: SceneSources, whole: MatrixWindow, exact: boolean, zoom: Zoom): { window: MatrixWindow | null; notice: string } {
  const local = exact ? cutRegion(whole, zoom.region) : null;
  if (local) return { window: local, notice: "" };
  const region = store.region(zoom.layer, zoom.head, zoom.region);
  if (region) return { window: region, notice: "" };
  store.requestRegion(zoom.layer, zoom.head, zoom.region, (content) => model.send(content));
  const { rows, columns } = zoom.region;
  return { window: null, notice: `Zooming into queries ${rows[0]}–${rows[1] - 1} × keys ${columns[0]}–${columns[1] - 1}: the exact values come from a running kernel.` };
}
