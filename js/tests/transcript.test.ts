// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { describeQuery, querySpan, spanText, visibleToken } from "../src/tokens";
import { TranscriptLine, clickWord, cursorFor, keyWord, spanQuery } from "../src/transcript";

const LAYOUT = { specialTokens: ["CLS"], gh: 2, gw: 3, queryLabels: ["A", " cat", " sat", "\n", "."] };

describe("visibleToken", () => {
  it("marks whitespace a token would not show and keeps the spaces inside words", () => {
    expect([" ", "\n", "\t", " \n", "", " cat", "a\nb", "x\u0007"].map(visibleToken)).toEqual(["␣", "↵", "⇥", "␣↵", "∅", " cat", "a↵b", "x\\u{7}"]);
  });
});

describe("query spans", () => {
  it("reads a query of neighbouring generated tokens as a span, and nothing else", () => {
    expect(querySpan(LAYOUT, [2, 1, 3])).toEqual({ first: 1, last: 3 });
    expect(querySpan(LAYOUT, [1, 3])).toBeNull();
    expect(querySpan(LAYOUT, [5])).toBeNull();
    expect(querySpan({ ...LAYOUT, queryLabels: [] }, [0])).toBeNull();
  });

  it("names a span by its words in the status line", () => {
    expect(describeQuery(LAYOUT, [1])).toBe('" cat"');
    expect(describeQuery(LAYOUT, [1, 2, 3])).toBe('" cat sat↵" (tokens 1–3)');
    expect(describeQuery(LAYOUT, [0, 4])).toBe("2 tokens");
    expect(spanText(Array.from({ length: 30 }, (_, i) => `w${i} `), { first: 0, last: 29 })).toMatch(/^w0 w1 .{13}….{19}$/);
  });
});

describe("word selection", () => {
  const start = cursorFor({ first: 2, last: 2 }, 5);

  it("chooses a clicked word, and with shift the span from the last chosen word", () => {
    expect(spanQuery(3, 1)).toEqual([1, 2, 3]);
    const one = clickWord(start, 4, false);
    expect(one.query).toEqual([4]);
    expect(clickWord(one.cursor, 1, true).query).toEqual([1, 2, 3, 4]);
  });

  it("moves the cursor with the arrow keys, chooses with Enter and spans with shift+arrows", () => {
    const moved = keyWord(start, "ArrowRight", false, 5);
    expect(moved).toEqual({ cursor: { anchor: 2, cursor: 3 }, query: null });
    expect(keyWord(moved!.cursor, "Enter", false, 5)?.query).toEqual([3]);
    const left = keyWord(start, "ArrowLeft", true, 5);
    expect(left?.query).toEqual([1, 2]);
    expect(keyWord(left!.cursor, "ArrowLeft", true, 5)?.query).toEqual([0, 1, 2]);
    expect(keyWord(keyWord(start, "Home", false, 5)!.cursor, "ArrowLeft", false, 5)?.cursor.cursor).toBe(0);
    expect(keyWord(start, "End", true, 5)?.query).toEqual([2, 3, 4]);
    expect(keyWord(start, "a", false, 5)).toBeNull();
    expect(keyWord(start, "Enter", false, 0)).toBeNull();
  });

  it("starts from the query's span, else from the last word", () => {
    expect(cursorFor({ first: 1, last: 3 }, 5)).toEqual({ anchor: 1, cursor: 3 });
    expect(cursorFor(null, 5)).toEqual({ anchor: 4, cursor: 4 });
  });
});

describe("TranscriptLine", () => {
  it("shows tokens as text, grows with them and reports clicks, shift-clicks and keys", () => {
    const chosen: number[][] = [];
    const line = new TranscriptLine(document, { choose: (query) => chosen.push(query), hover: () => undefined });
    document.body.append(line.root);
    expect(line.root.hidden).toBe(true);
    const labels = ["<img src=x onerror=alert(1)>", " cat", "\n"];
    line.sync(labels.slice(0, 2), { first: 1, last: 1 }, null);
    const first = line.wordElements[0];
    line.sync(labels, { first: 1, last: 1 }, null);
    const words = line.wordElements;
    expect(words[0]).toBe(first); // the words shown stay as they are while new ones come
    expect(words.map((word) => word.textContent)).toEqual(["<img src=x onerror=alert(1)>", " cat", "↵"]);
    expect(line.root.querySelector("img")).toBeNull();
    expect(words.map((word) => word.getAttribute("aria-selected"))).toEqual(["false", "true", "false"]);
    words[2].dispatchEvent(new MouseEvent("click", { bubbles: true }));
    words[0].dispatchEvent(new MouseEvent("click", { bubbles: true, shiftKey: true }));
    const list = line.root.querySelector<HTMLElement>("[role=listbox]")!;
    list.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    list.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(chosen).toEqual([[2], [0, 1, 2], [1]]);
    line.dispose();
    expect(document.body.contains(line.root)).toBe(false);
  });
});
