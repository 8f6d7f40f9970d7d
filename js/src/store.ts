/**
 * Per-model data store: the attention maps, specials and matrices of the grid, assembled from the
 * synced traits and from the `layers` messages streamed while a run is in progress, plus the exact
 * values of opened heads. Pure (no DOM): the binding feeds it traits and messages, views read it.
 *
 * Rules:
 * - Trait changes replace whatever was streamed.
 * - A message of an older run is ignored; one of a newer run starts that run: earlier data is hidden.
 * - A new `query` is answered locally from full-resolution matrices when there are some; otherwise
 *   the maps keep showing the previous query (`queryPending`) until the kernel's new `maps` arrive.
 *
 * Decoding, local query maps, matrix windows and the exact answers the kernel sends on request live
 * in decode.ts, query.ts, window.ts and exact.ts.
 */
import type { LayersMessage } from "./contract";
import { type EncodedRows, decodeRowsInto, readEncodedRows, readFloat32 } from "./decode";
import { type ExactHead, ExactAnswers, type ReplyContext, type Send } from "./exact";
import { isKernelMessage, readKernelMessage } from "./messages";
import type { DataTraits, GridShape } from "./model";
import { valueRange } from "./normalize";
import { localQueryMaps } from "./query";
import { sameQuery } from "./tokens";
import type { MatrixWindow, TokenRegion } from "./window";

/** The per-tile data of one view (query maps or matrices), for drawing. */
export interface TileSource {
  /** Native size of one tile's map (gw x gh, or T x T). */
  readonly width: number;
  readonly height: number;
  /** Tiles that hold data. */
  readonly count: number;
  has(tile: number): boolean;
  /** The tile's `width * height` values, row-major; the array may be reused by the next call. */
  values(tile: number): Float32Array;
  /** Each tile's own [lo, hi] (NaN for tiles without data). */
  readonly ranges: Float32Array;
}

/** Where the current maps come from. */
export type MapsSource = "kernel" | "local";

/** Which payload traits changed in an update. */
export interface TraitChanges {
  readonly maps: boolean;
  readonly matrices: boolean;
}

const EMPTY_SHAPE: GridShape = { layers: [], heads: [], gh: 0, gw: 0, specialTokens: [], tokenCount: 0, queryCount: 0, matrixSize: 0, tokenLabels: [], queryLabels: [], causal: false };

export class AttentionStore {
  shape: GridShape = EMPTY_SHAPE;
  /** Newest run seen, from the `run_id` trait or a message. */
  runId = 0;
  /** Bumped on every change, so views can tell whether to redraw. */
  version = 0;
  /** The last problem with the data, as a line for the user; "" when there is none. */
  error = "";
  mapsSource: MapsSource = "kernel";
  /** A new query is waiting for the kernel's maps; the maps shown are for `mapsQuery`. */
  queryPending = false;
  mapsQuery: readonly number[] = [];

  private mapValues: Float32Array = new Float32Array(0);
  private specialValues: Float32Array = new Float32Array(0);
  private present = new Uint8Array(0);
  private mapRanges = new Float32Array(0);
  private matrices: EncodedRows | null = null;
  /** The run (and query) the `maps` traits were computed for, and the run of the `matrices` traits. */
  private traitMaps: { runId: number; query: readonly number[] } = { runId: 0, query: [] };
  private matricesRunId = 0;
  private matrixRanges = new Float32Array(0);
  private matrixScratch = new Float32Array(0);
  private exact = new ExactAnswers();
  private listeners = new Set<() => void>();

  /** Number of grid tiles, `len(layers) * len(heads)`. */
  get tiles(): number {
    return this.shape.layers.length * this.shape.heads.length;
  }

  /** Grid rows (layers) whose every tile holds data. */
  get layersReceived(): number {
    const cols = this.shape.heads.length;
    let complete = 0;
    for (let row = 0; row < this.shape.layers.length; row++) {
      if (cols > 0 && this.present.subarray(row * cols, (row + 1) * cols).every((flag) => flag === 1)) complete++;
    }
    return complete;
  }

  /** Patches per map, `gh * gw`. */
  get patches(): number {
    return this.shape.gh * this.shape.gw;
  }

  /** Calls `listener` after every change; returns the function that stops it. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Rebuilds the data from the traits (streamed rows are dropped). `changed` tells which payloads
   * changed now: trait maps (matrices) belong to the run current when they last changed, and are
   * only shown while that run is the newest.
   */
  applyTraits(traits: DataTraits, changed: TraitChanges = { maps: true, matrices: true }): void {
    if (changed.maps) {
      if (!sameQuery(traits.query, this.mapsQuery)) this.exact.forgetMaps();
      this.traitMaps = { runId: traits.runId, query: traits.query };
    }
    if (changed.matrices) this.matricesRunId = traits.runId;
    this.shape = traits.shape;
    this.startRun(Math.max(this.runId, traits.runId));
    this.mapsQuery = this.traitMaps.query;
    this.mapsSource = "kernel";
    this.queryPending = false;
    this.error = "";
    try {
      if (this.traitMaps.runId === this.runId) this.readMaps(traits);
      if (this.matricesRunId === this.runId) this.readMatrices(traits);
    } catch (error) {
      this.error = errorText(error);
    }
    this.changed();
  }

  /** Follows the `run_id` trait: a newer run hides the data of the previous one. */
  applyRunId(runId: number): void {
    if (runId <= this.runId) return;
    this.startRun(runId);
    this.changed();
  }

  /** Handles a custom message from the kernel; returns false when it was not for the store. */
  applyMessage(message: unknown, buffers: readonly unknown[]): boolean {
    if (!isKernelMessage(message)) return false;
    try {
      const read = readKernelMessage(message);
      if (read.type === "layers") this.readLayers(read, buffers);
      else if (read.type === "head") this.exact.readHead(read, buffers, this.replyContext);
      else this.exact.readRegion(read, buffers, this.replyContext);
    } catch (error) {
      this.error = errorText(error);
    }
    this.changed();
    return true;
  }

  /**
   * Follows the `query` trait: maps for a query other than the one shown are computed here when
   * full-resolution matrices allow it, otherwise marked pending for the kernel.
   */
  applyQuery(query: readonly number[]): void {
    if (sameQuery(query, this.mapsQuery)) {
      if (!this.queryPending) return;
      this.queryPending = false;
      this.changed();
      return;
    }
    this.exact.forgetMaps();
    this.queryPending = !this.computeQueryLocally(query);
    this.changed();
  }

  /** Rows (queries) and columns (keys) of each tile's matrix: the pooled side, or fewer tokens. */
  get matrixShape(): { height: number; width: number } {
    const { matrixSize, queryCount, tokenCount } = this.shape;
    return { height: Math.min(matrixSize, queryCount), width: Math.min(matrixSize, tokenCount) };
  }

  /** True when maps for any query can be computed in the browser (full-resolution matrices). */
  get canComputeQueries(): boolean {
    const { tokenCount, queryCount, matrixSize, specialTokens } = this.shape;
    return (
      this.matrices !== null &&
      queryCount === tokenCount &&
      matrixSize === tokenCount &&
      tokenCount === specialTokens.length + this.patches &&
      this.matrices.columns === tokenCount &&
      this.matrices.rows === this.tiles * tokenCount
    );
  }

  /** The query maps of the grid. */
  get maps(): TileSource {
    const patches = this.patches;
    return {
      width: this.shape.gw,
      height: this.shape.gh,
      count: this.present.reduce((sum, flag) => sum + flag, 0),
      has: (tile) => this.present[tile] === 1,
      values: (tile) => this.mapValues.subarray(tile * patches, (tile + 1) * patches),
      ranges: this.mapRanges,
    };
  }

  /** The token x token matrices of the grid (T x T per tile). */
  get matrixTiles(): TileSource {
    const { height, width } = this.matrixShape;
    const available = this.matrices && height > 0 ? Math.min(this.tiles, Math.floor(this.matrices.rows / height)) : 0;
    return {
      width,
      height,
      count: available,
      has: (tile) => tile >= 0 && tile < available,
      values: (tile) => {
        if (this.matrixScratch.length !== height * width) this.matrixScratch = new Float32Array(height * width);
        if (this.matrices) decodeRowsInto(this.matrices, tile * height, height, this.matrixScratch);
        return this.matrixScratch;
      },
      ranges: this.matrixRanges,
    };
  }

  /** Attention from the query to each special token for `tile`, or `null` when the tile has no data. */
  specials(tile: number): Float32Array | null {
    const s = this.shape.specialTokens.length;
    if (this.present[tile] !== 1) return null;
    return this.specialValues.subarray(tile * s, (tile + 1) * s);
  }

  /** Grid tile of (layer, head) (1-based numbers), or -1 when the grid does not show it. */
  tileOf(layer: number, head: number): number {
    const row = this.shape.layers.indexOf(layer);
    const col = this.shape.heads.indexOf(head);
    return row < 0 || col < 0 ? -1 : row * this.shape.heads.length + col;
  }

  /** Exact values of (layer, head) known for the current run (and query, for the map). */
  exactHead(layer: number, head: number): ExactHead | null {
    return this.exact.head(layer, head);
  }

  /** Asks the kernel for the exact values of (layer, head) unless known or asked for (`ExactAnswers`). */
  requestHead(layer: number, head: number, send: Send): void {
    this.exact.requestHead(layer, head, send);
  }

  /** The zoomed-in `region` of (layer, head) for the current run, once the kernel sent it. */
  region(layer: number, head: number, region: TokenRegion): MatrixWindow | null {
    return this.exact.region(layer, head, region);
  }

  /** Asks the kernel for `region` of (layer, head) unless it is known or already asked for. */
  requestRegion(layer: number, head: number, region: TokenRegion, send: Send): void {
    this.exact.requestRegion(layer, head, region, send);
  }

  private get replyContext(): ReplyContext {
    const { queryCount, tokenCount } = this.shape;
    return { runId: this.runId, patches: this.patches, queryCount, tokenCount };
  }

  private startRun(runId: number): void {
    if (runId > this.runId) {
      this.exact.forgetAll();
      this.queryPending = false; // the kernel is at work: its rows replace the old maps
    }
    this.runId = runId;
    const tiles = this.tiles;
    this.mapValues = new Float32Array(tiles * this.patches);
    this.specialValues = new Float32Array(tiles * this.shape.specialTokens.length);
    this.present = new Uint8Array(tiles);
    this.mapRanges = new Float32Array(tiles * 2).fill(NaN);
    this.matrices = null;
    this.matrixRanges = new Float32Array(tiles * 2).fill(NaN);
  }

  private readMaps(traits: DataTraits): void {
    const maps = readEncodedRows(traits.maps, traits.mapsRange, this.patches, "maps");
    if (maps.rows > this.tiles) throw new Error(`maps: ${maps.rows} rows for a grid of ${this.tiles} tiles`);
    const specials = this.readSpecials(traits.specials, maps.rows, "specials");
    this.storeRows(0, maps, specials);
  }

  private readMatrices(traits: DataTraits): void {
    const { height, width } = this.matrixShape;
    const matrices = readEncodedRows(traits.matrices, traits.matricesRange, width, "matrices");
    if (matrices.rows === 0) return;
    if (matrices.rows % height !== 0 || matrices.rows / height > this.tiles) {
      throw new Error(`matrices: ${matrices.rows} rows are not whole ${height} x ${width} matrices for ${this.tiles} tiles`);
    }
    this.matrices = matrices;
    for (let tile = 0; tile < matrices.rows / height; tile++) {
      const [lo, hi] = valueRange(matrices.ranges, tile * height * 2, (tile + 1) * height * 2);
      this.matrixRanges[tile * 2] = lo;
      this.matrixRanges[tile * 2 + 1] = hi;
    }
  }

  private readLayers({ run_id: runId, first, count }: LayersMessage, buffers: readonly unknown[]): void {
    if (runId < this.runId) return;
    if (runId > this.runId) this.startRun(runId);
    if (first + count > this.shape.layers.length) {
      throw new Error(`layers message: rows ${first}..${first + count - 1} outside a grid of ${this.shape.layers.length} rows`);
    }
    const rows = count * this.shape.heads.length;
    const maps = readEncodedRows(buffers[0], buffers[1], this.patches, "layers message maps");
    if (maps.rows !== rows) throw new Error(`layers message: ${maps.rows} map rows, expected ${rows}`);
    const specials = this.readSpecials(buffers[2], rows, "layers message specials");
    this.storeRows(first * this.shape.heads.length, maps, specials);
  }

  private readSpecials(buffer: unknown, rows: number, what: string): Float32Array {
    return readFloat32(buffer, what, rows * this.shape.specialTokens.length);
  }

  /** Decodes `maps` (and their specials) into tiles `firstTile ..`, marking them present. */
  private storeRows(firstTile: number, maps: EncodedRows, specials: Float32Array): void {
    const patches = this.patches;
    const s = this.shape.specialTokens.length;
    decodeRowsInto(maps, 0, maps.rows, this.mapValues, firstTile * patches);
    this.specialValues.set(specials, firstTile * s);
    for (let row = 0; row < maps.rows; row++) {
      const tile = firstTile + row;
      this.present[tile] = 1;
      this.setMapRange(tile);
    }
  }

  private setMapRange(tile: number): void {
    const [lo, hi] = valueRange(this.mapValues, tile * this.patches, (tile + 1) * this.patches);
    this.mapRanges[tile * 2] = lo;
    this.mapRanges[tile * 2 + 1] = hi;
  }

  private computeQueryLocally(query: readonly number[]): boolean {
    if (!this.matrices || !this.canComputeQueries) return false;
    try {
      const local = localQueryMaps(this.matrices, this.tiles, this.shape.tokenCount, this.shape.specialTokens.length, query);
      this.mapValues = local.maps;
      this.specialValues = local.specials;
      this.present.fill(1);
      for (let tile = 0; tile < this.tiles; tile++) this.setMapRange(tile);
      this.mapsQuery = [...query];
      this.mapsSource = "local";
      return true;
    } catch (error) {
      this.error = errorText(error);
      return false;
    }
  }

  private changed(): void {
    this.version += 1;
    for (const listener of [...this.listeners]) listener();
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
