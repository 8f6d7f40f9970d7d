import { describe, expect, it, vi } from "vitest";
import { readDataTraits } from "../src/model";
import { AttentionStore } from "../src/store";
import type { HeadMessage } from "../src/contract";
import { FakeModel, encodeRows, float32View, widgetTraits } from "./helpers";

/** Rows of 4 patch values for `tiles` tiles; tile t holds t + [0.1, 0.2, 0.3, 0.4]. */
function mapRows(firstTile: number, tiles: number): number[][] {
  return Array.from({ length: tiles }, (_, i) => [0.1, 0.2, 0.3, 0.4].map((v) => firstTile + i + v));
}

/** A `layers` message for grid rows `first ..` of a 2-head grid. */
function layersMessage(runId: number, first: number, count: number): [object, unknown[]] {
  const { data, range } = encodeRows(mapRows(first * 2, count * 2));
  const specials = float32View(Array.from({ length: count * 2 }, (_, i) => first * 2 + i));
  return [{ type: "layers", run_id: runId, first, count }, [data, range, specials]];
}

function storeFor(overrides: Record<string, unknown> = {}): AttentionStore {
  const store = new AttentionStore();
  store.applyTraits(readDataTraits(new FakeModel(widgetTraits(overrides))));
  return store;
}

function presentTiles(store: AttentionStore): number[] {
  const maps = store.maps;
  return Array.from({ length: store.tiles }, (_, t) => t).filter((t) => maps.has(t));
}

describe("AttentionStore streaming", () => {
  it("assembles streamed layers into their grid rows, the rest stays empty", () => {
    const store = storeFor({ run_id: 1, status: "running" });
    store.applyMessage(...layersMessage(1, 1, 1));
    expect(presentTiles(store)).toEqual([2, 3]);
    expect(store.maps.count).toBe(2);
    expect(store.maps.values(3)[0]).toBeCloseTo(3.1, 5);
    expect(store.maps.values(3)[3]).toBeCloseTo(3.4, 5);
    expect([...(store.specials(2) ?? [])]).toEqual([2]);
    expect(store.specials(0)).toBeNull();
    expect(store.layersReceived).toBe(1);
    store.applyMessage(...layersMessage(1, 0, 1));
    store.applyMessage(...layersMessage(1, 2, 1));
    expect(presentTiles(store)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(store.layersReceived).toBe(3);
    expect(store.maps.ranges[2 * 2]).toBeCloseTo(2.1, 5);
  });

  it("takes coalesced layers", () => {
    const store = storeFor({ run_id: 1 });
    store.applyMessage(...layersMessage(1, 0, 2));
    expect(presentTiles(store)).toEqual([0, 1, 2, 3]);
    store.applyMessage(...layersMessage(1, 2, 1));
    expect(presentTiles(store)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("ignores messages of an older run and starts afresh on a newer one", () => {
    const store = storeFor({ run_id: 2 });
    store.applyMessage(...layersMessage(1, 0, 1));
    expect(presentTiles(store)).toEqual([]);
    store.applyMessage(...layersMessage(2, 0, 1));
    expect(presentTiles(store)).toEqual([0, 1]);
    store.applyMessage(...layersMessage(3, 2, 1));
    expect(store.runId).toBe(3);
    expect(presentTiles(store)).toEqual([4, 5]);
    store.applyMessage(...layersMessage(2, 1, 1));
    expect(presentTiles(store)).toEqual([4, 5]);
  });

  it("lets trait changes replace streamed rows", () => {
    const store = storeFor({ run_id: 1 });
    store.applyMessage(...layersMessage(1, 0, 1));
    const { data, range } = encodeRows(mapRows(10, 6));
    const model = new FakeModel(widgetTraits({ run_id: 1, maps: data, maps_range: range, specials: float32View([0, 0, 0, 0, 0, 0]) }));
    store.applyTraits(readDataTraits(model));
    expect(presentTiles(store)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(store.maps.values(0)[0]).toBeCloseTo(10.1, 5);
  });

  it("hides the previous run's maps when a new run starts, until its rows arrive", () => {
    const { data, range } = encodeRows(mapRows(0, 6));
    const traits = widgetTraits({ run_id: 1, maps: data, maps_range: range, specials: float32View(new Array(6).fill(0)) });
    const model = new FakeModel(traits);
    const store = new AttentionStore();
    store.applyTraits(readDataTraits(model));
    expect(store.maps.count).toBe(6);
    store.applyRunId(2);
    expect(store.maps.count).toBe(0);
    // The layout traits are re-sent with the new run, the maps are not: still hidden.
    model.update({ run_id: 2, grid: [2, 2] });
    store.applyTraits(readDataTraits(model), { maps: false, matrices: false });
    expect(store.maps.count).toBe(0);
    store.applyMessage(...layersMessage(2, 0, 1));
    expect(presentTiles(store)).toEqual([0, 1]);
  });

  it("reports malformed payloads as an error line instead of throwing", () => {
    const store = storeFor({ run_id: 1 });
    const [content, buffers] = layersMessage(1, 0, 1);
    expect(() => store.applyMessage(content, [buffers[0], new DataView(new ArrayBuffer(5)), buffers[2]])).not.toThrow();
    expect(store.error).toMatch(/range/);
    store.applyMessage({ type: "layers", run_id: 1, first: 2, count: 2 }, buffers);
    expect(store.error).toMatch(/outside a grid of 3 rows/);
    const [second, secondBuffers] = layersMessage(1, 1, 1);
    store.applyMessage(second, secondBuffers.slice(0, 2)); // no specials buffer
    expect(store.error).toMatch(/specials: 0 float32 values, expected 2/);
    const bad = new AttentionStore();
    bad.applyTraits(readDataTraits(new FakeModel(widgetTraits({ maps: new DataView(new ArrayBuffer(7)) }))));
    expect(bad.error).toMatch(/maps: 7 bytes/);
    expect(bad.maps.count).toBe(0);
    expect(store.applyMessage({ type: "something else" }, [])).toBe(false);
    expect(store.applyMessage("not an object", [])).toBe(false);
  });
});

/** Traits with full-resolution matrices (T == N == 5) for all 6 tiles. */
function withMatrices(): Record<string, unknown> {
  const rows: number[][] = [];
  for (let tile = 0; tile < 6; tile++) {
    for (let q = 0; q < 5; q++) rows.push(Array.from({ length: 5 }, (_, k) => (k === q ? 0.6 : 0.1) + tile / 100));
  }
  const matrices = encodeRows(rows);
  const maps = encodeRows(Array.from({ length: 6 }, (_, tile) => [0.1, 0.1, 0.1, 0.1].map((v) => v + tile / 100)));
  return {
    run_id: 1,
    status: "done",
    maps: maps.data,
    maps_range: maps.range,
    specials: float32View(Array.from({ length: 6 }, (_, tile) => 0.6 + tile / 100)),
    matrix_size: 5,
    matrices: matrices.data,
    matrices_range: matrices.range,
  };
}

describe("AttentionStore queries", () => {
  it("computes the maps of a new query from full-resolution matrices", () => {
    const store = storeFor(withMatrices());
    expect(store.canComputeQueries).toBe(true);
    store.applyQuery([3]); // patch (1, 0)
    expect(store.mapsSource).toBe("local");
    expect(store.queryPending).toBe(false);
    expect(store.mapsQuery).toEqual([3]);
    const map = store.maps.values(2);
    expect(map[2]).toBeCloseTo(0.62, 2);
    expect(map[0]).toBeCloseTo(0.12, 2);
    expect(store.specials(2)?.[0]).toBeCloseTo(0.12, 2);
  });

  it("marks the query pending when the matrices are pooled", () => {
    const traits = withMatrices();
    const store = storeFor({ ...traits, token_count: 5, matrix_size: 3, matrices: new DataView(new ArrayBuffer(0)), matrices_range: null });
    expect(store.canComputeQueries).toBe(false);
    store.applyQuery([3]);
    expect(store.queryPending).toBe(true);
    expect(store.maps.values(0)[0]).toBeCloseTo(0.1, 5);
    store.applyQuery([0]);
    expect(store.queryPending).toBe(false);
  });

  it("reads the pooled matrices per tile", () => {
    const store = storeFor(withMatrices());
    const tiles = store.matrixTiles;
    expect([tiles.width, tiles.height, tiles.count]).toEqual([5, 5, 6]);
    expect(tiles.values(1)[0]).toBeCloseTo(0.61, 2);
    expect(tiles.ranges[2]).toBeCloseTo(0.11, 2);
    expect(tiles.ranges[3]).toBeCloseTo(0.61, 2);
  });
});

describe("AttentionStore exact heads", () => {
  const reply = (layer: number, head: number, mapValue: number): [object, unknown[]] => [
    { type: "head", run_id: 1, layer, head, height: 5, width: 5, query: [0] } satisfies HeadMessage,
    [float32View([mapValue, 0, 0, 0]), float32View(new Array(25).fill(0.2))],
  ];

  it("asks once per head and query, and keeps the reply", () => {
    const store = storeFor(withMatrices());
    const sent: object[] = [];
    store.requestHead(2, 1, (m) => sent.push(m));
    store.requestHead(2, 1, (m) => sent.push(m));
    expect(sent).toEqual([{ type: "request_head", layer: 2, head: 1 }]);
    store.applyMessage(...reply(2, 1, 0.7));
    expect(store.exactHead(2, 1)?.map?.[0]).toBeCloseTo(0.7, 6);
    expect(store.exactHead(2, 1)?.matrix?.length).toBe(25);
    store.requestHead(2, 1, (m) => sent.push(m));
    expect(sent.length).toBe(1);
  });

  it("drops the exact map on a new query, keeps the matrix, ignores a late reply for the old query", () => {
    const store = storeFor(withMatrices());
    const sent: object[] = [];
    store.requestHead(1, 2, (m) => sent.push(m));
    store.applyQuery([4]);
    store.requestHead(1, 2, (m) => sent.push(m));
    expect(sent.length).toBe(2);
    store.applyMessage(...reply(1, 2, 0.1)); // answers the first request: old query
    expect(store.exactHead(1, 2)?.map).toBeNull();
    expect(store.exactHead(1, 2)?.matrix).not.toBeNull();
    store.applyMessage(...reply(1, 2, 0.9));
    expect(store.exactHead(1, 2)?.map?.[0]).toBeCloseTo(0.9, 6);
  });

  it("survives a send that throws (no kernel) without asking again", () => {
    const store = storeFor(withMatrices());
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    let calls = 0;
    const failing = (): void => {
      calls += 1;
      throw new Error("no kernel");
    };
    expect(() => store.requestHead(1, 1, failing)).not.toThrow();
    store.requestHead(1, 1, failing);
    expect(calls).toBe(1);
    expect(warn).toHaveBeenCalledOnce();
    warn.mockRestore();
  });

  it("rejects a reply of the wrong size", () => {
    const store = storeFor(withMatrices());
    store.applyMessage({ type: "head", run_id: 1, layer: 1, head: 1, height: 5, width: 5, query: [0] }, [float32View([1, 2]), float32View([])]);
    expect(store.error).toMatch(/head message map: 2 float32 values, expected 4/);
    expect(store.exactHead(1, 1)).toBeNull();
  });

  it("maps (layer, head) numbers to tiles", () => {
    const store = storeFor();
    expect(store.tileOf(2, 2)).toBe(3);
    expect(store.tileOf(4, 1)).toBe(-1);
  });
});

describe("AttentionStore zoomed-in regions", () => {
  const region = { rows: [1, 4] as const, columns: [0, 2] as const };
  const reply = (runId: number, values: number[], rows: number[] = [1, 4]): [object, unknown[]] => [
    { type: "region", layer: 2, head: 1, rows, columns: [0, 2], height: 3, width: 2, run_id: runId },
    [float32View(values)],
  ];

  it("asks once for a region and keeps the reply for that region only", () => {
    const store = storeFor(withMatrices());
    const sent: object[] = [];
    store.requestRegion(2, 1, region, (m) => sent.push(m));
    store.requestRegion(2, 1, region, (m) => sent.push(m));
    expect(sent).toEqual([{ type: "request_region", layer: 2, head: 1, rows: [1, 4], columns: [0, 2] }]);
    expect(store.region(2, 1, region)).toBeNull();
    store.applyMessage(...reply(store.runId, [1, 2, 3, 4, 5, 6]));
    expect([...(store.region(2, 1, region)?.values ?? [])]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(store.region(2, 1, { rows: [0, 3], columns: [0, 2] })).toBeNull();
    expect(store.region(1, 1, region)).toBeNull();
  });

  it("ignores a late reply for a region no longer asked for, and forgets regions on a new run", () => {
    const store = storeFor(withMatrices());
    store.requestRegion(2, 1, region, () => undefined);
    store.requestRegion(2, 1, { rows: [0, 3], columns: [0, 2] }, () => undefined);
    store.applyMessage(...reply(store.runId, [1, 2, 3, 4, 5, 6])); // answers the first request
    expect(store.region(2, 1, region)).toBeNull();
    store.applyMessage(...reply(store.runId, [1, 2, 3, 4, 5, 6], [0, 3]));
    expect(store.region(2, 1, { rows: [0, 3], columns: [0, 2] })).not.toBeNull();
    store.applyRunId(store.runId + 1);
    expect(store.region(2, 1, { rows: [0, 3], columns: [0, 2] })).toBeNull();
  });

  it("rejects malformed replies with a message", () => {
    const store = storeFor(withMatrices());
    store.requestRegion(2, 1, region, () => undefined);
    store.applyMessage(...reply(store.runId, [1, 2]));
    expect(store.error).toMatch(/region message values: 2 float32 values, expected 6/);
    store.applyMessage({ type: "region", run_id: store.runId, layer: 2, head: 1, rows: [4, 1], columns: [0, 2], height: 3, width: 2 }, []);
    expect(store.error).toMatch(/rows \[4, 1\) outside 5 tokens/);
    store.applyMessage({ type: "region", run_id: store.runId, layer: 2, head: 1, rows: [1, 4], columns: [0, 2], height: 9, width: 2 }, []);
    expect(store.error).toMatch(/more cells than tokens/);
    store.applyMessage({ type: "region", run_id: store.runId, layer: 2, head: 1, rows: [1], columns: [0, 2], height: 3, width: 2 }, []);
    expect(store.error).toMatch(/region message: rows must be \[first, stop\]/);
    store.applyMessage({ type: "head", run_id: store.runId, layer: 2, head: 1, height: 5, width: 5 }, []);
    expect(store.error).toMatch(/head message: query must be a list of tokens/);
    expect(store.region(2, 1, region)).toBeNull();
  });
});

describe("AttentionStore cross attention", () => {
  it("reads query x key matrices of decoder rows against encoder columns", () => {
    // 3 decoder tokens x 5 encoder tokens, unpooled; 3 layers x 2 heads (the helpers' grid).
    const tiles = 6;
    const rows = Array.from({ length: tiles * 3 }, (_, r) => [0, 1, 2, 3, 4].map((k) => (r * 5 + k) / 100));
    const { data, range } = encodeRows(rows);
    const store = storeFor({ grid: [1, 5], token_count: 5, query_labels: ["a", "b", "c"], matrix_size: 5, matrices: data, matrices_range: range });
    expect(store.shape.queryCount).toBe(3);
    expect(store.matrixShape).toEqual({ height: 3, width: 5 });
    const tile = store.matrixTiles;
    expect([tile.width, tile.height, tile.count]).toEqual([5, 3, 6]);
    expect(tile.values(1)[0]).toBeCloseTo(0.15, 2); // tile 1 starts at row 3
    expect(store.canComputeQueries).toBe(false); // rows are decoder tokens, not the keys
    expect(store.error).toBe("");
  });
});
