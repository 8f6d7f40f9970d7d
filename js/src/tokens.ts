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
  if (label !== undefined) return `"${visibleToken(label)}"`;
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
  return label !== undefined ? `"${visibleToken(label)}"` : tokenName(layout, token);
}

/** Marks that stand for characters a token's text would not show. */
const VISIBLE: Readonly<Record<string, string>> = { " ": "␣", "\n": "↵", "\r": "↵", "\t": "⇥" };

/**
 * A token's text as it is shown (as text, never as HTML): the empty token as "∅", a token of
 * whitespace alone with each character marked ("␣", "↵", "⇥"), newlines and tabs inside others marked,
 * other control characters as `\u{..}` escapes. Spaces inside a word's token stay spaces.
 */
export function visibleToken(text: string): string {
  if (text === "") return "∅";
  const blank = text.trim() === "";
  return Array.from(text, (char) => {
    if (char in VISIBLE && (blank || char !== " ")) return VISIBLE[char];
    if (blank && /\s/.test(char)) return "␣";
    return /\p{Cc}/u.test(char) ? `\\u{${char.codePointAt(0)?.toString(16)}}` : char;
  }).join("");
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
  const span = querySpan(layout, tokens);
  if (span) return `"${spanText(layout.queryLabels ?? [], span)}" (tokens ${span.first}–${span.last})`;
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

/** A run of query tokens `first..last` (inclusive). */
export interface QuerySpan {
  readonly first: number;
  readonly last: number;
}

/** The query as a run of named query tokens (cross attention), or null when it is not one. */
export function querySpan(layout: TokenLayout, query: readonly number[]): QuerySpan | null {
  const count = layout.queryLabels?.length ?? 0;
  const tokens = [...new Set(query)];
  if (count === 0 || tokens.length === 0) return null;
  const first = Math.min(...tokens);
  const last = Math.max(...tokens);
  return first >= 0 && last < count && last - first + 1 === tokens.length ? { first, last } : null;
}

/** The longest text of a span shown in a line: longer ones are cut in the middle. */
const SPAN_TEXT_LIMIT = 40;

/** The span's tokens joined as they are shown ("A cat sat"), cut in the middle past 40 characters. */
export function spanText(labels: readonly string[], span: QuerySpan): string {
  const text = labels.slice(span.first, span.last + 1).map(visibleToken).join("");
  if (text.length <= SPAN_TEXT_LIMIT) return text;
  const half = Math.floor((SPAN_TEXT_LIMIT - 1) / 2);
  return `${text.slice(0, half)}…${text.slice(text.length - half)}`;
}
