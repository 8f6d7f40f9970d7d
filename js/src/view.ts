/**
 * One view of the widget: toolbar, status line, the generated tokens (transcript and shares plot),
 * grid and overlay, kept in step with the model's traits (all views of a model share them) and with
 * the model's data store. Only the pointer hover and the shares plot's layer are local to a view.
 *
 * `renderView` is one closure because its draw and its listeners share the view's state (hover,
 * zoom, the scheduled frame). Its parts without that state live apart: the overlay's scenes
 * (overlay-scenes.ts), the toolbar (toolbar.ts), captions (captions.ts), read-outs (readout.ts), the
 * picture loader (picture.ts), the transcript (transcript.ts) and the shares plot (shares.ts).
 */
import { colormap } from "./colormaps";
import { DATA_TRAITS, GRID_TRAIT_NAMES } from "./contract";
import { canvasPoint, element, syncText } from "./dom";
import { GridCanvas } from "./grid";
import type { TileHit } from "./layout";
import {
  type ViewState,
  type WidgetModel,
  readCount,
  readQuery,
  readStatus,
  readString,
  readViewState,
  saveTraits,
} from "./model";
import { describePredictions, readMethod, readPredictions } from "./methods";
import { colorBarRange, displayRanges, isDiverging } from "./normalize";
import { OverlayPanel } from "./overlay";
import { type Zoom, headScene, methodScene } from "./overlay-scenes";
import { PictureLoader } from "./picture";
import { matrixCellName } from "./readout";
import { backgroundsBehind, composeSnapshot, downloadPng, fileName } from "./snapshot";
import { rangeCaption } from "./captions";
import { type QueryShares, SharesPlot, readQueryShares } from "./shares";
import { statusLine } from "./status";
import { Toolbar } from "./toolbar";
import type { AttentionStore, TileSource } from "./store";
import { ensureStyles } from "./styles";
import { defaultQuery, describeQuery, formatValue, querySpan } from "./tokens";
import { TranscriptLine } from "./transcript";

/** Traits that change what a view shows: all but the data traits (they reach it through the store) and the panel link. */
const VIEW_TRAITS = GRID_TRAIT_NAMES.filter((name) => !(DATA_TRAITS as readonly string[]).includes(name) && name !== "head_dots");

const GRID_HINT = "Click a tile to open it. Keyboard: arrow keys move the selection, Enter opens it, Escape closes it.";
const GRID_MAX_WIDTH = 720;
const OVERLAY_MAX_SIDE = 512;
/** The grid's panel is as wide as the grid, and no narrower than this: its read-out wraps inside it,
 * so hovering never widens it and moves the overlay beside it. */
const GRID_PANEL_MIN_WIDTH = 320;

const ARROWS: Record<string, readonly [number, number]> = {
  ArrowUp: [-1, 0],
  ArrowDown: [1, 0],
  ArrowLeft: [0, -1],
  ArrowRight: [0, 1],
};

/** Renders the widget into `el`; returns the cleanup that removes it and all its listeners. */
export function renderView(model: WidgetModel, el: HTMLElement, store: AttentionStore): () => void {
  const doc = el.ownerDocument;
  const win = doc.defaultView;
  ensureStyles(el);

  const toolbar = new Toolbar(doc, model);
  const predictions = element(doc, "div", { className: "aw-predictions", testId: "attnwidget-predictions" });
  const status = element(doc, "div", { className: "aw-status", testId: "attnwidget-status", attrs: { role: "status", "aria-live": "polite" } });
  const grid = new GridCanvas(doc);
  const hint = element(doc, "div", { className: "aw-hint", testId: "attnwidget-grid-readout", text: GRID_HINT });
  const gridPanel = element(doc, "div", { className: "aw-grid-panel" }, [grid.canvas, hint]);
  const overlay = new OverlayPanel(doc, {
    close: () => saveTraits(model, { overlay_open: false }),
    setAlpha: (alpha, final) => (final ? saveTraits(model, { alpha }) : model.set("alpha", alpha)),
    setInterpolation: (interpolation) => saveTraits(model, { interpolation }),
    setColormap: (name) => saveTraits(model, { colormap: name }),
    resetQuery: () => saveTraits(model, { query: defaultQuery(store.shape) }),
    setQuery: (token) => saveTraits(model, { query: [token] }),
    setMaskMass: (mass) => saveTraits(model, { mask_mass: mass }),
    zoom: (region) => {
      const selected = readViewState(model).selected;
      zoom = region && selected ? { layer: selected[0], head: selected[1], region } : null;
      schedule();
    },
  });
  /** The zoomed-in region of the matrix shown in the overlay, for the head it was chosen on. */
  let zoom: Zoom | null = null;
  const pictures = new PictureLoader(doc, (picture) => overlay.setPicture(picture));
  /** The generated token under the pointer, in the transcript or the shares plot; null for none. */
  let hoveredWord: number | null = null;
  /** A problem reading `query_shares`, for the status line; "" when there is none. */
  let sharesError = "";
  const hoverWord = (token: number | null): void => {
    if (token === hoveredWord) return;
    hoveredWord = token;
    drawGenerated();
  };
  const transcript = new TranscriptLine(doc, { choose: (query) => saveTraits(model, { query }), hover: hoverWord });
  const shares = new SharesPlot(doc, { click: (token, shift) => transcript.click(token, shift), hover: hoverWord });
  const root = element(doc, "div", { className: "attnwidget", testId: "attnwidget-root" }, [
    toolbar.root,
    status,
    predictions,
    element(doc, "div", { className: "aw-generated" }, [transcript.root, shares.root]),
    element(doc, "div", { className: "aw-body" }, [gridPanel, overlay.root]),
  ]);
  el.append(root);

  let hover: TileHit | null = null;
  let explanationVersion = 0;
  const explanationChanged = (): void => {
    explanationVersion += 1;
  };
  let cancelFrame: (() => void) | null = null;

  const draw = (): void => {
    cancelFrame = null;
    const state = readViewState(model);
    toolbar.sync();
    const top = readPredictions(model);
    syncText(predictions, top.length ? `Predicted: ${describePredictions(top)}` : "");
    drawGenerated();
    drawStatus();
    drawGridAndOverlay(state);
    describeHover();
  };
  const schedule = (): void => {
    if (cancelFrame) return;
    if (win?.requestAnimationFrame) {
      const frame = win.requestAnimationFrame(draw);
      cancelFrame = () => win.cancelAnimationFrame(frame);
    } else {
      const timer = setTimeout(draw, 0);
      cancelFrame = () => clearTimeout(timer);
    }
  };

  const drawStatus = (): void => {
    const shape = store.shape;
    const value = readStatus(model);
    status.dataset.status = value;
    syncText(
      status,
      statusLine({
        status: value,
        message: readString(model, "message"),
        modelName: readString(model, "model_name"),
        // While running, count the layers streamed so far: the trait is only set when a run ends.
        layersDone: value === "running" ? store.layersReceived : readCount(model, "layers_done"),
        layerCount: shape.layers.length,
        headCount: shape.heads.length,
        query: describeQuery(shape, readQuery(model)),
        dataError: [store.error, sharesError].filter(Boolean).join("; "),
        queryPending: store.queryPending,
        savedBytes: readCount(model, "saved_bytes"),
        matricesMissing: value === "done" && readViewState(model).view === "matrix" && shape.matrixSize === 0,
      }),
    );
  };

  /** The transcript of generated tokens and the plot of their attention shares (when there are some). */
  const drawGenerated = (): void => {
    const shape = store.shape;
    const labels = shape.queryLabels;
    const span = querySpan(shape, readQuery(model));
    transcript.sync(labels, span, hoveredWord);
    let read: QueryShares | null = null;
    try {
      read = labels.length ? readQueryShares(model.get("query_shares"), labels.length, readCount(model, "layer_count")) : null;
      sharesError = "";
    } catch (error) {
      sharesError = error instanceof Error ? error.message : String(error);
    }
    if (!read) {
      shares.hide();
      return;
    }
    shares.draw({ labels, shares: read, span, hovered: hoveredWord, maxWidth: el.clientWidth || GRID_MAX_WIDTH });
  };

  const drawGridAndOverlay = (state: ViewState): void => {
    const shape = store.shape;
    const source = tilesFor(state);
    const ranges = displayRanges(state.normalize, source.ranges, shape.layers.length, shape.heads.length, isDiverging(state.colormap));
    const selectedTile = state.selected ? store.tileOf(state.selected[0], state.selected[1]) : -1;
    const lut = colormap(state.colormap);
    const range = colorBarRange(state.normalize, ranges, selectedTile >= 0 ? selectedTile : null);
    const caption = rangeCaption(state, selectedTile >= 0);
    const maxWidth = Math.min(GRID_MAX_WIDTH, el.clientWidth || GRID_MAX_WIDTH);
    grid.draw({
      rowLabels: shape.layers.map((layer) => `l=${layer}`),
      colLabels: shape.heads.map((head) => state.headNames[head - 1] ?? `h=${head}`),
      source,
      ranges,
      lut,
      selectedTile,
      selectedLabel: selectedTile >= 0 && state.selected ? state.selected.join(",") : "",
      colorBarRange: range,
      colorBarCaption: caption,
      dataKey: `${store.version}|${state.view}`,
      colorKey: `${state.colormap}|${state.normalize}`,
      maxWidth,
      causalTokens: state.view === "matrix" && shape.causal ? shape.tokenCount : 0,
    });
    grid.canvas.dataset.view = state.view;
    gridPanel.style.width = `${Math.max(parseFloat(grid.canvas.style.width) || 0, GRID_PANEL_MIN_WIDTH)}px`;
    const method = readMethod(model);
    const attention = method === "attention";
    if (!state.overlayOpen || (attention && (!state.selected || selectedTile < 0))) {
      overlay.hide();
      root.dataset.overlayOpen = "false";
      return;
    }
    if (attention && state.selected) store.requestHead(state.selected[0], state.selected[1], (content) => model.send(content));
    pictures.load(model.get("image"));
    const gridWidth = parseFloat(grid.canvas.style.width) || maxWidth;
    const sources = { model, store, maxSide: overlaySide(el.clientWidth || GRID_MAX_WIDTH + OVERLAY_MAX_SIDE, gridWidth) };
    if (attention) {
      const shown = headScene(sources, state, { source, ranges, tile: selectedTile, caption }, zoom);
      zoom = shown.zoom;
      overlay.show(shown.scene);
    } else {
      overlay.show(methodScene(sources, state, method, explanationVersion));
    }
    root.dataset.overlayOpen = "true";
  };

  const tilesFor = (state: ViewState): TileSource => (state.view === "matrix" ? store.matrixTiles : store.maps);

  const describeHover = (): void => {
    // The read-out takes the hint's place: it keeps the tallest height it had, so that hovering never
    // shortens the panel and moves the grid under the pointer (the page keeps its scroll anchor).
    // Its exact height, not the rounded offsetHeight: a fraction of a pixel less still moves the page.
    const height = hint.getBoundingClientRect().height;
    hint.style.minHeight = `${Math.max(height, parseFloat(hint.style.minHeight) || 0)}px`;
    syncText(hint, hover ? hoverText(hover) : GRID_HINT);
  };

  const hoverText = (hit: TileHit): string => {
    const shape = store.shape;
    const state = readViewState(model);
    const tile = hit.row * shape.heads.length + hit.col;
    const head = shape.heads[hit.col];
    const name = state.headNames[head - 1];
    const label = `l=${shape.layers[hit.row]} h=${head}${name ? ` (${name})` : ""}`;
    const source = tilesFor(state);
    if (!source.has(tile)) return `${label} · not received yet`;
    const row = Math.floor(hit.fy * source.height);
    const col = Math.floor(hit.fx * source.width);
    const value = formatValue(source.values(tile)[row * source.width + col]);
    if (state.view === "query") return `${label} · patch (${row}, ${col}) · ${value}`;
    return `${label} · query ${matrixCellName(shape, "query", row, source.height)} → key ${matrixCellName(shape, "key", col, source.width)} · ${value}`;
  };

  const select = (row: number, col: number, open: boolean): void => {
    const shape = store.shape;
    const traits: Record<string, unknown> = { selected: [shape.layers[row], shape.heads[col]] };
    if (open) traits.overlay_open = true;
    saveTraits(model, traits);
  };

  const onGridClick = (event: MouseEvent): void => {
    const { x, y } = canvasPoint(grid.canvas, event);
    const hit = grid.hit(x, y);
    if (!hit) return;
    select(hit.row, hit.col, true);
    grid.canvas.focus({ preventScroll: true });
  };

  const onGridMove = (event: PointerEvent): void => {
    const { x, y } = canvasPoint(grid.canvas, event);
    hover = grid.hit(x, y);
    describeHover();
  };

  const onGridLeave = (): void => {
    hover = null;
    describeHover();
  };

  const onGridKey = (event: KeyboardEvent): void => {
    const shape = store.shape;
    const rows = shape.layers.length;
    const cols = shape.heads.length;
    if (rows === 0 || cols === 0) return;
    const state = readViewState(model);
    const tile = state.selected ? store.tileOf(state.selected[0], state.selected[1]) : -1;
    const current = tile >= 0 ? { row: Math.floor(tile / cols), col: tile % cols } : null;
    const move = ARROWS[event.key];
    if (move) {
      const row = current ? Math.min(rows - 1, Math.max(0, current.row + move[0])) : 0;
      const col = current ? Math.min(cols - 1, Math.max(0, current.col + move[1])) : 0;
      select(row, col, false);
      syncText(hint, `l=${shape.layers[row]} h=${shape.heads[col]} selected`);
    } else if (event.key === "Enter" || event.key === " ") {
      select(current?.row ?? 0, current?.col ?? 0, true);
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  };

  const savePng = (): void => {
    const overlayParts = overlay.snapshotParts();
    const canvases = [shares.canvas, grid.canvas, ...overlayParts.canvases];
    const picture = composeSnapshot(doc, canvases, [...transcript.wordElements, ...overlayParts.texts], backgroundsBehind(root));
    if (!picture) return;
    const state = readViewState(model);
    const head = state.overlayOpen && state.selected ? [`l${state.selected[0]}`, `h${state.selected[1]}`] : [];
    downloadPng(doc, picture, fileName("attnwidget", readString(model, "model_name"), ...head));
  };

  const onRootKey = (event: KeyboardEvent): void => {
    if (event.key !== "Escape" || !readViewState(model).overlayOpen) return;
    saveTraits(model, { overlay_open: false });
    grid.canvas.focus({ preventScroll: true });
    event.preventDefault();
    event.stopPropagation();
  };

  const domListeners: [EventTarget, string, EventListener][] = [
    [grid.canvas, "click", onGridClick as EventListener],
    [grid.canvas, "pointermove", onGridMove as EventListener],
    [grid.canvas, "pointerleave", onGridLeave],
    [grid.canvas, "keydown", onGridKey as EventListener],
    [root, "keydown", onRootKey as EventListener],
    [toolbar.saveButton, "click", savePng],
  ];
  for (const [target, type, listener] of domListeners) target.addEventListener(type, listener);
  model.on("change:explanation", explanationChanged);
  for (const name of VIEW_TRAITS) model.on(`change:${name}`, schedule);
  const unsubscribe = store.subscribe(schedule);
  const resize = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(schedule);
  resize?.observe(el);
  // Canvas text takes the theme's colours when it is drawn: draw again when the page's theme changes
  // (JupyterLab marks it on <body> once the theme's stylesheet applies; other hosts switch a class).
  const theme = typeof MutationObserver === "undefined" ? null : new MutationObserver(schedule);
  for (const node of [doc.documentElement, doc.body]) {
    if (node) theme?.observe(node, { attributes: true, attributeFilter: THEME_ATTRIBUTES });
  }
  const colorScheme = win?.matchMedia?.("(prefers-color-scheme: dark)");
  colorScheme?.addEventListener?.("change", schedule);
  draw();

  return () => {
    cancelFrame?.();
    resize?.disconnect();
    theme?.disconnect();
    colorScheme?.removeEventListener?.("change", schedule);
    unsubscribe();
    model.off("change:explanation", explanationChanged);
    for (const name of VIEW_TRAITS) model.off(`change:${name}`, schedule);
    for (const [target, type, listener] of domListeners) target.removeEventListener(type, listener);
    toolbar.dispose();
    transcript.dispose();
    shares.dispose();
    pictures.dispose();
    root.remove();
  };
}

/** Attributes of <html> and <body> whose change means the page's theme changed. */
const THEME_ATTRIBUTES = ["class", "data-theme", "data-jp-theme-name", "data-jp-theme-light"];

/** Side of the overlay: beside the grid when there is room for a useful size, else below it at full size. */
function overlaySide(available: number, gridWidth: number): number {
  const beside = available - Math.max(gridWidth, GRID_PANEL_MIN_WIDTH) - 48;
  return Math.round(Math.min(OVERLAY_MAX_SIDE, beside >= 320 ? beside : Math.max(160, available - 24)));
}
