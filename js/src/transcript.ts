/**
 * The transcript: a vision-language model's generated tokens (`query_labels`) as a line of words
 * above the grid, growing while generation streams. Clicking a word makes it the query; shift-click
 * makes the span from the last chosen word to it the query (their maps are averaged). Keyboard: the
 * arrow keys move a cursor over the words, Enter chooses the word under it, shift+arrows extend the
 * span. Words are shown as text (`textContent`), never as HTML, with whitespace made visible.
 *
 * The selection rules are pure (`clickWord`, `keyWord`); `TranscriptLine` keeps the DOM in step.
 */
import { element } from "./dom";
import { type QuerySpan, visibleToken } from "./tokens";

/** Where the keyboard is in the transcript: the word a span grows from and the cursor's word. */
export interface WordCursor {
  readonly anchor: number;
  readonly cursor: number;
}

/** What a click or a key does: the new cursor and, when the query changes, the new query. */
export interface WordChoice {
  readonly cursor: WordCursor;
  readonly query: number[] | null;
}

/** The tokens `a..b` (either order), as a query. */
export function spanQuery(a: number, b: number): number[] {
  const first = Math.min(a, b);
  return Array.from({ length: Math.abs(a - b) + 1 }, (_, i) => first + i);
}

/** The cursor a transcript starts from: on the query's span (its last word), else on the last word. */
export function cursorFor(span: QuerySpan | null, count: number): WordCursor {
  if (span) return { anchor: span.first, cursor: span.last };
  return { anchor: Math.max(0, count - 1), cursor: Math.max(0, count - 1) };
}

/** A click on word `index`: the word alone, or with shift the span from the anchor to it. */
export function clickWord(from: WordCursor, index: number, shift: boolean): WordChoice {
  if (shift) return { cursor: { anchor: from.anchor, cursor: index }, query: spanQuery(from.anchor, index) };
  return { cursor: { anchor: index, cursor: index }, query: [index] };
}

const STEPS: Readonly<Record<string, number>> = { ArrowLeft: -1, ArrowUp: -1, ArrowRight: 1, ArrowDown: 1 };

/**
 * A key in a transcript of `count` words: arrows move the cursor (with shift: the span from the
 * anchor to the moved cursor becomes the query), Home / End go to the first / last word, Enter and
 * Space choose the cursor's word. Null for keys the transcript leaves to others.
 */
export function keyWord(from: WordCursor, key: string, shift: boolean, count: number): WordChoice | null {
  if (count === 0) return null;
  const clamp = (index: number): number => Math.min(count - 1, Math.max(0, index));
  const target = key in STEPS ? clamp(from.cursor + STEPS[key]) : key === "Home" ? 0 : key === "End" ? count - 1 : null;
  if (target !== null) {
    if (shift) return { cursor: { anchor: clamp(from.anchor), cursor: target }, query: spanQuery(clamp(from.anchor), target) };
    return { cursor: { anchor: from.anchor, cursor: target }, query: null };
  }
  if (key === "Enter" || key === " ") return clickWord(from, clamp(from.cursor), false);
  return null;
}

/** Callbacks of the transcript: a new query chosen, a word hovered (or null). */
export interface TranscriptHandlers {
  choose(query: number[]): void;
  hover(index: number | null): void;
}

/** The transcript's DOM: one `<span>` per generated token in a focusable list. */
export class TranscriptLine {
  readonly root: HTMLElement;
  private readonly words: HTMLElement;
  private labels: readonly string[] = [];
  private span: QuerySpan | null = null;
  private keyboard: WordCursor | null = null;
  private readonly listeners: [string, EventListener][];

  constructor(
    doc: Document,
    private readonly handlers: TranscriptHandlers,
  ) {
    this.words = element(doc, "div", {
      className: "aw-words",
      testId: "attnwidget-transcript-words",
      attrs: {
        tabindex: "0",
        role: "listbox",
        "aria-multiselectable": "true",
        "aria-label": "Generated tokens: click one to query it, shift-click for a span; arrow keys and Enter, shift+arrows for a span",
        "data-lm-suppress-shortcuts": "true",
      },
    });
    this.root = element(doc, "div", { className: "aw-transcript", testId: "attnwidget-transcript" }, [this.words]);
    this.root.hidden = true;
    const index = (event: Event): number | null => {
      const word = (event.target as Element | null)?.closest?.("[data-index]");
      return word instanceof HTMLElement && this.words.contains(word) ? Number(word.dataset.index) : null;
    };
    const onClick = (event: MouseEvent): void => {
      const at = index(event);
      if (at === null) return;
      this.click(at, event.shiftKey);
      this.words.focus({ preventScroll: true });
    };
    const onKey = (event: KeyboardEvent): void => {
      const choice = keyWord(this.cursor(), event.key, event.shiftKey, this.labels.length);
      if (!choice) return;
      this.apply(choice);
      event.preventDefault();
      event.stopPropagation();
    };
    const onMove = (event: PointerEvent): void => handlers.hover(index(event));
    const onLeave = (): void => handlers.hover(null);
    this.listeners = [
      ["click", onClick as EventListener],
      ["keydown", onKey as EventListener],
      ["pointermove", onMove as EventListener],
      ["pointerleave", onLeave],
    ];
    for (const [type, listener] of this.listeners) this.words.addEventListener(type, listener);
  }

  /** Chooses word `index` as a click on it does (with shift: the span from the anchor to it). */
  click(index: number, shift: boolean): void {
    if (index >= 0 && index < this.labels.length) this.apply(clickWord(this.cursor(), index, shift));
  }

  /** The words' elements, for Save PNG. */
  get wordElements(): HTMLElement[] {
    return Array.from(this.words.children) as HTMLElement[];
  }

  /** Shows `labels` (only new or changed words are touched), the query's span and the hovered word. */
  sync(labels: readonly string[], span: QuerySpan | null, hovered: number | null): void {
    this.root.hidden = labels.length === 0;
    const doc = this.words.ownerDocument;
    const nodes = this.words.children;
    while (nodes.length > labels.length) nodes[nodes.length - 1].remove();
    labels.forEach((label, i) => {
      let word = nodes[i] as HTMLElement | undefined;
      if (!word) {
        word = element(doc, "span", { className: "aw-word", attrs: { role: "option", "data-index": String(i) } });
        this.words.append(word);
      }
      if (this.labels[i] !== label || word.textContent === "") {
        word.textContent = visibleToken(label);
        word.title = `token ${i}: ${JSON.stringify(label)}`;
      }
      const selected = span !== null && i >= span.first && i <= span.last;
      word.setAttribute("aria-selected", String(selected));
      word.classList.toggle("aw-cursor", this.keyboard?.cursor === i);
      word.classList.toggle("aw-hovered", hovered === i);
    });
    if (!sameSpan(span, this.span)) this.keyboard = null; // the query changed elsewhere: start from it
    this.labels = labels;
    this.span = span;
  }

  dispose(): void {
    for (const [type, listener] of this.listeners) this.words.removeEventListener(type, listener);
    this.root.remove();
  }

  private cursor(): WordCursor {
    return this.keyboard ?? cursorFor(this.span, this.labels.length);
  }

  private apply(choice: WordChoice): void {
    this.keyboard = choice.cursor;
    if (choice.query) {
      this.span = { first: Math.min(...choice.query), last: Math.max(...choice.query) };
      this.handlers.choose(choice.query);
    }
    this.sync(this.labels, this.span, null);
  }
}

function sameSpan(a: QuerySpan | null, b: QuerySpan | null): boolean {
  return a === b || (a !== null && b !== null && a.first === b.first && a.last === b.last);
}
