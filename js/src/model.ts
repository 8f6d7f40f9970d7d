/**
 * The widget model as anywidget hands it over, typed by the traits of the generated contract
 * (contract.ts), and readers for them. Readers never throw: a missing or odd value (an older saved
 * state, a hand-edited notebook) reads as the trait's default.
 */
import {
  COLORMAPS,
  type ColormapName,
  type FrontendRequest,
  GRID_DEFAULTS,
  type GridTraits,
  INTERPOLATIONS,
  type Interpolation,
  NORMALIZE_SCOPES,
  type NormalizeScope,
  POOLINGS,
  type Pooling,
  STATUSES,
  type Status,
  VALUE_KINDS,
  VIEWS,
  type ValueKind,
  type View,
} from "./contract";

type Callback = (...args: never[]) => void;

/** Trait names of `T` whose values are of type `V`. */
type NamesOf<T, V> = { [K in keyof T]: T[K] extends V ? K : never }[keyof T] & string;

/**
 * The part of anywidget's `AnyModel` this widget uses, for a model with the traits `T`: trait names
 * and the values written are checked against the contract. Values read may still be odd (see above).
 */
export interface WidgetModel<T extends object = GridTraits> {
  get<K extends keyof T & string>(name: K): T[K] | undefined;
  set<K extends keyof T & string>(name: K, value: T[K]): void;
  save_changes(): void;
  send(content: FrontendRequest, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
  on(event: `change:${keyof T & string}` | "msg:custom", callback: Callback): void;
  off(event?: `change:${keyof T & string}` | "msg:custom" | null, callback?: Callback | null): void;
}

/** True when `value` is one of `values` (the values of an enumerated trait). */
export function isOneOf<V extends string>(values: readonly V[], value: unknown): value is V {
  return typeof value === "string" && (values as readonly string[]).includes(value);
}

/** The grid's rows and columns and the token layout: what every data buffer is shaped by. */
export interface GridShape {
  /** 1-based layer numbers of the grid rows. */
  readonly layers: readonly number[];
  /** 1-based head numbers of the grid columns. */
  readonly heads: readonly number[];
  readonly gh: number;
  readonly gw: number;
  readonly specialTokens: readonly string[];
  /** `N`, the key tokens (and the query tokens, but for cross attention); `S + gh * gw` when unset. */
  readonly tokenCount: number;
  /** The query tokens: `tokenCount`, or the decoder's tokens of cross attention. */
  readonly queryCount: number;
  /** `T`, the largest side of the pooled matrices (`min(queryCount, T) x min(tokenCount, T)`). */
  readonly matrixSize: number;
  /** Text models: every (key) token as text (empty for pictures). */
  readonly tokenLabels: readonly string[];
  /** Cross attention: the query (decoder) tokens as text; empty when the queries are the keys. */
  readonly queryLabels: readonly string[];
  /** Decoder self-attention: each query sees only itself and earlier keys. */
  readonly causal: boolean;
}

/** The view traits: written by the front-end or by Python, shared by all views of a model. */
export interface ViewState {
  readonly view: View;
  readonly colormap: ColormapName;
  readonly normalize: NormalizeScope;
  /** `[layer, head]` (1-based) or `null`. */
  readonly selected: readonly [number, number] | null;
  readonly overlayOpen: boolean;
  readonly alpha: number;
  readonly interpolation: Interpolation;
  /** What the values are (`value_kind`): attention weights, or signed scores, attributions, differences. */
  readonly valueKind: ValueKind;
  /** A name per head of the model, written instead of `h=..`; empty for none. */
  readonly headNames: readonly string[];
}

/** The data traits, as raw payloads: decoding (and its errors) is the store's job. */
export interface DataTraits {
  readonly shape: GridShape;
  readonly maps: unknown;
  readonly mapsRange: unknown;
  readonly specials: unknown;
  readonly matrices: unknown;
  readonly matricesRange: unknown;
  readonly runId: number;
  readonly query: readonly number[];
}

/** What the overlay needs to place the picture and the patch grid. */
export interface PictureState {
  readonly image: unknown;
  /** [W, H] of the original picture. */
  readonly imageSize: readonly [number, number] | null;
  /** [x0, y0, x1, y1] as fractions of the original. */
  readonly cropBox: readonly [number, number, number, number];
  /** [H, W] of the model input. */
  readonly inputSize: readonly [number, number] | null;
  readonly patchSize: number;
}

/** Reads the grid shape. */
export function readShape(model: Pick<WidgetModel, "get">): GridShape {
  const grid = intList(model.get("grid"));
  const gh = Math.max(0, grid[0] ?? 0);
  const gw = Math.max(0, grid[1] ?? 0);
  const specialTokens = stringList(model.get("special_tokens"));
  const tokenCount = positiveInt(model.get("token_count")) || specialTokens.length + gh * gw;
  const queryLabels = stringList(model.get("query_labels"));
  return {
    layers: intList(model.get("layers")),
    heads: intList(model.get("heads")),
    gh,
    gw,
    specialTokens,
    tokenCount,
    queryCount: queryLabels.length || tokenCount,
    matrixSize: positiveInt(model.get("matrix_size")),
    tokenLabels: stringList(model.get("token_labels")),
    queryLabels,
    causal: model.get("causal") === true,
  };
}

/** Reads the data traits. */
export function readDataTraits(model: Pick<WidgetModel, "get">): DataTraits {
  return {
    shape: readShape(model),
    maps: model.get("maps"),
    mapsRange: model.get("maps_range"),
    specials: model.get("specials"),
    matrices: model.get("matrices"),
    matricesRange: model.get("matrices_range"),
    runId: readCount(model, "run_id"),
    query: readQuery(model),
  };
}

/** Reads the view traits. */
export function readViewState(model: Pick<WidgetModel, "get">): ViewState {
  const view = model.get("view");
  const colormap = model.get("colormap");
  const normalize = model.get("normalize");
  const interpolation = model.get("interpolation");
  const selected = intList(model.get("selected"));
  const alpha = Number(model.get("alpha"));
  const valueKind = model.get("value_kind");
  return {
    view: isOneOf(VIEWS, view) ? view : GRID_DEFAULTS.view,
    colormap: isOneOf(COLORMAPS, colormap) ? colormap : GRID_DEFAULTS.colormap,
    normalize: isOneOf(NORMALIZE_SCOPES, normalize) ? normalize : GRID_DEFAULTS.normalize,
    selected: selected.length === 2 ? [selected[0], selected[1]] : null,
    overlayOpen: model.get("overlay_open") === true,
    alpha: Number.isFinite(alpha) ? Math.min(1, Math.max(0, alpha)) : GRID_DEFAULTS.alpha,
    interpolation: isOneOf(INTERPOLATIONS, interpolation) ? interpolation : GRID_DEFAULTS.interpolation,
    valueKind: isOneOf(VALUE_KINDS, valueKind) ? valueKind : GRID_DEFAULTS.value_kind,
    headNames: stringList(model.get("head_names")),
  };
}

/** Reads the picture traits. */
export function readPicture(model: Pick<WidgetModel, "get">): PictureState {
  const crop = numberList(model.get("crop_box"));
  const valid = crop.length === 4 && crop[0] >= 0 && crop[1] >= 0 && crop[2] <= 1 && crop[3] <= 1 && crop[0] < crop[2] && crop[1] < crop[3];
  return {
    image: model.get("image"),
    imageSize: pair(numberList(model.get("image_size"))),
    cropBox: valid ? [crop[0], crop[1], crop[2], crop[3]] : [0, 0, 1, 1],
    inputSize: pair(numberList(model.get("input_size"))),
    patchSize: positiveInt(model.get("patch_size")),
  };
}

/** The `status` trait. */
export function readStatus(model: Pick<WidgetModel, "get">): Status {
  const status = model.get("status");
  return isOneOf(STATUSES, status) ? status : GRID_DEFAULTS.status;
}

/** The `query` trait: 0-based token indices. */
export function readQuery(model: Pick<WidgetModel, "get">): number[] {
  return intList(model.get("query")).filter((t) => t >= 0);
}

/** A string trait, "" when unset. */
export function readString(model: Pick<WidgetModel, "get">, name: NamesOf<GridTraits, string>): string {
  const value = model.get(name);
  return typeof value === "string" ? value : "";
}

/** A non-negative integer trait, 0 when unset. */
export function readCount(model: Pick<WidgetModel, "get">, name: NamesOf<GridTraits, number>): number {
  return positiveInt(model.get(name));
}

/** Sets traits and syncs them to the kernel; with no kernel the change stays local. */
export function saveTraits<T extends object>(model: Pick<WidgetModel<T>, "set" | "save_changes">, traits: Partial<T>): void {
  for (const name of Object.keys(traits) as (keyof T & string)[]) model.set(name, traits[name] as T[typeof name]);
  try {
    model.save_changes();
  } catch (error) {
    console.warn("attnwidget: could not sync to the kernel", error);
  }
}

function numberList(value: unknown): number[] {
  return Array.isArray(value) ? value.filter((v): v is number => typeof v === "number" && Number.isFinite(v)) : [];
}

function intList(value: unknown): number[] {
  return numberList(value).filter(Number.isInteger);
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.map((v) => String(v)) : [];
}

function positiveInt(value: unknown): number {
  return typeof value === "number" && Number.isInteger(value) && value > 0 ? value : 0;
}

function pair(values: number[]): [number, number] | null {
  return values.length === 2 && values[0] > 0 && values[1] > 0 ? [values[0], values[1]] : null;
}

/** How the kernel pools matrices larger than their side (the `pooling` trait). */
export function readPooling(model: Pick<WidgetModel, "get">): Pooling {
  const pooling = model.get("pooling");
  return isOneOf(POOLINGS, pooling) ? pooling : GRID_DEFAULTS.pooling;
}
