/**
 * Geometry of the layer x head grid canvas (CSS pixels) and hit-testing, plus the token ranges of
 * adaptive-pooled matrix cells. Pure: no DOM.
 *
 *   ┌──────┬──────────────────────────────┐
 *   │      │ h=1  h=2  ...   (column labels)
 *   │ l=1  │ [tile][tile] ...             │
 *   │ l=2  │ [tile][tile] ...             │
 *   │      │ [colour bar]  lo  mid  hi    │
 *   └──────┴──────────────────────────────┘
 */

export interface Rect {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface GridLayoutOptions {
  readonly rows: number;
  readonly cols: number;
  /** Longest row label (e.g. "l=12"), in characters: sizes the left margin. */
  readonly rowLabelChars: number;
  /** Longest column label (e.g. "h=12"), in characters: decides how many column labels fit. */
  readonly colLabelChars: number;
  /** CSS pixels available for the canvas. */
  readonly maxWidth: number;
  /** The colour bar's caption, in characters: the canvas widens for it up to `maxWidth`. */
  readonly captionChars?: number;
}

export interface GridLayout {
  readonly rows: number;
  readonly cols: number;
  /** Side of a square tile. */
  readonly tileSize: number;
  readonly gap: number;
  /** Top-left corner of tile (0, 0). */
  readonly originX: number;
  readonly originY: number;
  /** Canvas size. */
  readonly width: number;
  readonly height: number;
  /** Label every `rowLabelStep`-th row and `colLabelStep`-th column (1 = all), so labels never overlap. */
  readonly rowLabelStep: number;
  readonly colLabelStep: number;
  readonly fontSize: number;
  /** The gradient of the colour bar; its numbers go on the line below it, its caption below those. */
  readonly colorBar: Rect;
}

/** A point on a tile: grid row and column, and the position inside the tile as fractions in [0, 1). */
export interface TileHit {
  readonly row: number;
  readonly col: number;
  readonly fx: number;
  readonly fy: number;
}

const FONT_SIZE = 11;
const CHAR_WIDTH = FONT_SIZE * 0.62;
const GAP = 2;
const MIN_TILE = 12;
const MAX_TILE = 72;
const PAD = 4;
const COLOR_BAR_GAP = 10;
const COLOR_BAR_HEIGHT = 10;
const TEXT_LINE = FONT_SIZE + 4;

/** Lays out `rows x cols` square tiles, as large as `maxWidth` allows within [12, 72] px. */
export function computeGridLayout(options: GridLayoutOptions): GridLayout {
  const rows = Math.max(0, options.rows);
  const cols = Math.max(0, options.cols);
  const originX = Math.ceil(options.rowLabelChars * CHAR_WIDTH) + 2 * PAD;
  const originY = TEXT_LINE + PAD;
  const room = options.maxWidth - originX - PAD - Math.max(0, cols - 1) * GAP;
  const tileSize = Math.max(MIN_TILE, Math.min(MAX_TILE, Math.floor(room / Math.max(1, cols))));
  const span = (count: number): number => Math.max(0, count * tileSize + (count - 1) * GAP);
  const barWidth = Math.min(320, Math.max(180, span(cols)));
  const colorBar: Rect = {
    x: originX,
    y: originY + span(rows) + COLOR_BAR_GAP,
    width: barWidth,
    height: COLOR_BAR_HEIGHT,
  };
  return {
    rows,
    cols,
    tileSize,
    gap: GAP,
    originX,
    originY,
    width: Math.max(
      originX + Math.max(span(cols), barWidth) + PAD,
      Math.min(options.maxWidth, originX + Math.ceil((options.captionChars ?? 0) * CHAR_WIDTH) + PAD),
    ),
    height: colorBar.y + COLOR_BAR_HEIGHT + 2 * TEXT_LINE + PAD,
    rowLabelStep: labelStep(tileSize + GAP, TEXT_LINE),
    colLabelStep: labelStep(tileSize + GAP, options.colLabelChars * CHAR_WIDTH + PAD),
    fontSize: FONT_SIZE,
    colorBar,
  };
}

/** The rectangle of tile (row, col). */
export function tileRect(layout: GridLayout, row: number, col: number): Rect {
  const pitch = layout.tileSize + layout.gap;
  return { x: layout.originX + col * pitch, y: layout.originY + row * pitch, width: layout.tileSize, height: layout.tileSize };
}

/** The tile under (x, y), or `null` over a gap, a label, the colour bar or outside the grid. */
export function hitTest(layout: GridLayout, x: number, y: number): TileHit | null {
  const column = axisHit(x - layout.originX, layout.tileSize, layout.gap, layout.cols);
  const line = axisHit(y - layout.originY, layout.tileSize, layout.gap, layout.rows);
  if (!column || !line) return null;
  return { row: line.index, col: column.index, fx: column.fraction, fy: line.fraction };
}

/**
 * Tokens covered by cell `cell` of a matrix adaptively pooled from `tokens` to `cells` per side:
 * `[floor(cell * tokens / cells), ceil((cell + 1) * tokens / cells) - 1]`, both inclusive.
 */
export function cellTokenRange(cell: number, tokens: number, cells: number): [number, number] {
  return [Math.floor((cell * tokens) / cells), Math.ceil(((cell + 1) * tokens) / cells) - 1];
}

function axisHit(offset: number, tile: number, gap: number, count: number): { index: number; fraction: number } | null {
  if (offset < 0) return null;
  const index = Math.floor(offset / (tile + gap));
  const inside = offset - index * (tile + gap);
  if (index >= count || inside >= tile) return null;
  return { index, fraction: inside / tile };
}

function labelStep(pitch: number, needed: number): number {
  return Math.max(1, Math.ceil(needed / pitch));
}

/** Where the picture, the region the model saw and its patch grid lie on the overlay canvas. */
export interface PictureLayout {
  readonly width: number;
  readonly height: number;
  /** The `crop_box` region. */
  readonly crop: Rect;
  /** The part of the crop region covered by the patch grid (all of it unless the input size is not a multiple of the patch size). */
  readonly grid: Rect;
}

/**
 * Fits a `imageWidth x imageHeight` picture into a `maxSide` square (scaling up or down) and places
 * `cropBox` ([x0, y0, x1, y1] fractions) and the patch grid (`coverage` fractions of the crop) on it.
 */
export function pictureLayout(
  imageWidth: number,
  imageHeight: number,
  maxSide: number,
  cropBox: readonly [number, number, number, number],
  coverage: readonly [number, number],
): PictureLayout {
  const scale = Math.min(maxSide / imageWidth, maxSide / imageHeight);
  const width = Math.max(1, Math.round(imageWidth * scale));
  const height = Math.max(1, Math.round(imageHeight * scale));
  const [x0, y0, x1, y1] = cropBox;
  const crop: Rect = { x: x0 * width, y: y0 * height, width: (x1 - x0) * width, height: (y1 - y0) * height };
  const grid: Rect = { x: crop.x, y: crop.y, width: crop.width * coverage[0], height: crop.height * coverage[1] };
  return { width, height, crop, grid };
}

/**
 * Fractions of the model input (`inputSize` = [H, W]) covered by `gh x gw` patches of `patchSize`
 * pixels: [1, 1] unless the model drops a remainder, or when the sizes are unknown.
 */
export function gridCoverage(
  gh: number,
  gw: number,
  inputSize: readonly [number, number] | null,
  patchSize: number,
): [number, number] {
  if (!inputSize || patchSize <= 0 || gh <= 0 || gw <= 0) return [1, 1];
  return [Math.min(1, (gw * patchSize) / inputSize[1]), Math.min(1, (gh * patchSize) / inputSize[0])];
}

/** The cell of a `rows x cols` grid spread over `rect` under (x, y), or `null` outside it. */
export function cellAt(rect: Rect, rows: number, cols: number, x: number, y: number): { row: number; col: number } | null {
  const fx = (x - rect.x) / rect.width;
  const fy = (y - rect.y) / rect.height;
  if (!(fx >= 0 && fx < 1 && fy >= 0 && fy < 1)) return null;
  return { row: Math.min(rows - 1, Math.floor(fy * rows)), col: Math.min(cols - 1, Math.floor(fx * cols)) };
}
