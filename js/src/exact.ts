/**
 * Exact answers the kernel sends on request: a head's values (its map for the current query and its
 * token x token matrix) and zoomed-in regions of a head's matrix. Pure (no DOM); `AttentionStore`
 * owns one and tells it when a run or a query starts, so late replies to an outdated run or query
 * are dropped.
 */
import type { FrontendRequest, HeadMessage, RegionMessage } from "./contract";
import { readFloat32 } from "./decode";
import { type MatrixWindow, type TokenRegion, type TokenSpan, sameRegion } from "./window";

/** Exact values of one head, from the kernel's `head` reply. */
export interface ExactHead {
  /** float32 [gh * gw] for the current query, or `null` when not (yet) known for it. */
  readonly map: Float32Array | null;
  /** float32 [height * width] query x key matrix (pooled beyond 1024 tokens), or `null`. */
  readonly matrix: Float32Array | null;
  readonly height: number;
  readonly width: number;
}

export type Send = (request: FrontendRequest) => void;

/** What a reply is checked against: the store's newest run and its grid's sizes. */
export interface ReplyContext {
  readonly runId: number;
  readonly patches: number;
  readonly queryCount: number;
  readonly tokenCount: number;
}

interface HeadRecord {
  sent: number;
  received: number;
  /** Replies numbered up to these answer an outdated query (map) or run (both). */
  mapValidFrom: number;
  matrixValidFrom: number;
  map: Float32Array | null;
  matrix: Float32Array | null;
  height: number;
  width: number;
}

function newRecord(): HeadRecord {
  return { sent: 0, received: 0, mapValidFrom: 0, matrixValidFrom: 0, map: null, matrix: null, height: 0, width: 0 };
}

export class ExactAnswers {
  private heads = new Map<string, HeadRecord>();
  /** Per head, the last zoomed-in region asked for and, once it arrived, its values. */
  private regions = new Map<string, { asked: TokenRegion; window: MatrixWindow | null }>();

  /** Exact values of (layer, head) known for the current run (and query, for the map). */
  head(layer: number, head: number): ExactHead | null {
    const record = this.heads.get(headKey(layer, head));
    if (!record || (!record.map && !record.matrix)) return null;
    return { map: record.map, matrix: record.matrix, height: record.height, width: record.width };
  }

  /**
   * Asks the kernel for the exact values of (layer, head) unless they are known or already asked
   * for. With no kernel the request goes nowhere (or `send` throws): it is not repeated.
   */
  requestHead(layer: number, head: number, send: Send): void {
    const key = headKey(layer, head);
    const record = this.heads.get(key) ?? newRecord();
    this.heads.set(key, record);
    const complete = record.map !== null && record.matrix !== null;
    const waiting = record.sent > record.received && record.sent > record.mapValidFrom;
    if (complete || waiting) return;
    record.sent += 1;
    try {
      send({ type: "request_head", layer, head });
    } catch (error) {
      console.warn("attnwidget: no kernel to ask for exact values", error);
    }
  }

  /** The zoomed-in `region` of (layer, head) for the current run, once the kernel sent it. */
  region(layer: number, head: number, region: TokenRegion): MatrixWindow | null {
    const record = this.regions.get(headKey(layer, head));
    return record?.window && sameRegion(record.window, region) ? record.window : null;
  }

  /** Asks the kernel for `region` of (layer, head) unless it is known or already asked for. */
  requestRegion(layer: number, head: number, region: TokenRegion, send: Send): void {
    const key = headKey(layer, head);
    if (sameRegion(this.regions.get(key)?.asked ?? null, region)) return;
    this.regions.set(key, { asked: region, window: null });
    try {
      send({ type: "request_region", layer, head, rows: [...region.rows], columns: [...region.columns] });
    } catch (error) {
      console.warn("attnwidget: no kernel to ask for a region", error);
    }
  }

  /** Exact maps answer the query they were asked for: forget them (and late replies) on a new query. */
  forgetMaps(): void {
    for (const record of this.heads.values()) {
      record.mapValidFrom = record.sent;
      record.map = null;
    }
  }

  /** A new run: every answer (and every late reply) is outdated. */
  forgetAll(): void {
    for (const record of this.heads.values()) {
      record.mapValidFrom = record.matrixValidFrom = record.sent;
      record.map = record.matrix = null;
    }
    this.regions.clear();
  }

  /** Keeps a `head` reply's values where it answers the current run and query; throws on bad data. */
  readHead({ run_id: runId, layer, head, height, width }: HeadMessage, buffers: readonly unknown[], context: ReplyContext): void {
    const key = headKey(layer, head);
    const record = this.heads.get(key) ?? newRecord();
    this.heads.set(key, record);
    record.received += 1;
    if (runId < context.runId) return;
    const map = readFloat32(buffers[0], "head message map", context.patches);
    const matrix = readFloat32(buffers[1], "head message matrix", height * width);
    if (record.received > record.mapValidFrom) record.map = map;
    if (record.received > record.matrixValidFrom) {
      record.matrix = matrix;
      record.height = height;
      record.width = width;
    }
  }

  /** Keeps a `region` reply's values where it is the region last asked for; throws on bad data. */
  readRegion(message: RegionMessage, buffers: readonly unknown[], context: ReplyContext): void {
    if (message.run_id < context.runId) return;
    const span = ([first, stop]: readonly [number, number], what: string, tokens: number): TokenSpan => {
      if (first >= stop || stop > tokens) throw new Error(`region message: ${what} [${first}, ${stop}) outside ${tokens} tokens`);
      return [first, stop];
    };
    const rows = span(message.rows, "rows", context.queryCount);
    const columns = span(message.columns, "columns", context.tokenCount);
    const { height, width } = message;
    if (height > rows[1] - rows[0] || width > columns[1] - columns[0]) throw new Error("region message: more cells than tokens");
    const values = readFloat32(buffers[0], "region message values", height * width);
    const record = this.regions.get(headKey(message.layer, message.head));
    if (record && sameRegion(record.asked, { rows, columns })) record.window = { values, height, width, rows, columns };
  }
}

function headKey(layer: number, head: number): string {
  return `${layer},${head}`;
}
