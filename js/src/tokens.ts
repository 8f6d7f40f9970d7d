/**
 * The token layout: `N = S + gh * gw` tokens, the `S` special (prefix) tokens first, then the patches
 * row-major, so token `S + r * gw + c` is patch (r, c). Plus the texts that name tokens and queries.
 */

export interface TokenLayout {
  /** Names of the special tokens, e.g. ["CLS", "reg1"]; `S` is its length. */
  readonly specialTokens: readonly string[];
  readonly gh: number;
  readonly gw: number;
  /** Text models: every token as text; the "patch grid" is then one row of tokens. */
  readonly tokenLabels?: readonly string[];
  /** Text decoders: each query sees only itself and earlier keys. */
  readonly causal?: boolean;
  /** Cross attention: the query tokens as text, when they are not the keys. */
  readonly queryLabels?: readonly string[];
}

/** Token index of patch (row, col). */
export function patchToken(layout: TokenLayout, row: number, col: number): number {
  return layout.specialTokens.length + row * layout.gw + col;
}

/**
 * "CLS" for a special token, "patch (r, c)" for a patch token, the token's text in quotes for a
 * text model, "token t" outside the layout. Callers show it as text, never as HTML.
 */
export function tokenName(layout: TokenLayout, token: number): string {
  const label = layout.tokenLabels?.[token];
  if (label !== undefined) return `"${label}"`;
  const s = layout.specialTokens.length;
  if (token >= 0 && token < s) return layout.specialTokens[token] || `special ${token}`;
  const patch = token - s;
  if (patch >= 0 && patch < layout.gh * layout.gw && layout.gw > 0) {
    return `patch (${Math.floor(patch / layout.gw)}, ${patch % layout.gw})`;
  }
  return `token ${token}`;
}

/** The name of query token `token`: a decoder token of cross attention, else as `tokenName`. */
export function queryName(layout: TokenLayout, token: number): string {
  const label = layout.queryLabels?.length ? layout.queryLabels[token] : undefined;
  return label !== undefined ? `"${label}"` : tokenName(layout, token);
}

/** True for the name of a class token ("CLS", "cls_token", "[CLS]", "class"). */
export function isClsLike(name: string | undefined): boolean {
  return name !== undefined && /cls|class/i.test(name);
}

/**
 * The query a "reset" restores, as the kernel defines it: `[0]` when the first special token is a
 * class token, otherwise every patch. Text: the last token of a decoder (also the last decoder
 * token of cross attention), a leading class token of an encoder, otherwise every token.
 */
export function defaultQuery(layout: TokenLayout): number[] {
  const queries = layout.queryLabels ?? [];
  if (queries.length > 0) return [queries.length - 1];
  const labels = layout.tokenLabels ?? [];
  if (labels.length > 0 && layout.causal) return [labels.length - 1];
  if (isClsLike(labels[0])) return [0];
  if (isClsLike(layout.specialTokens[0])) return [0];
  const first = layout.specialTokens.length;
  return Array.from({ length: layout.gh * layout.gw }, (_, i) => first + i);
}

/** True when both queries hold the same tokens (order and repeats ignored). */
export function sameQuery(a: readonly number[], b: readonly number[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((token) => right.has(token));
}

/** A short text for a query: "CLS", "patch (3, 4)", "all 196 patches", "5 tokens". */
export function describeQuery(layout: TokenLayout, query: readonly number[]): string {
  const tokens = [...new Set(query)];
  const patches = layout.gh * layout.gw;
  const s = layout.specialTokens.length;
  if (tokens.length === 1) return queryName(layout, tokens[0]);
  if (patches > 0 && tokens.length === patches && tokens.every((t) => t >= s && t < s + patches)) {
    return `all ${patches} ${layout.tokenLabels?.length ? "tokens" : "patches"}`;
  }
  return `${tokens.length} tokens`;
}

/** A value for read-outs: 4 significant digits, exponent form for tiny or huge magnitudes. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "–";
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude < 1e-3 || magnitude >= 1e5) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}
