/**
 * The widget's styles, injected once per document (or shadow root) in a `<style>` element.
 *
 * Colours come from JupyterLab's theme variables where the host defines them. Elsewhere (marimo,
 * exported pages) text takes the host's colour (a variable that is not defined, given no fallback,
 * leaves `color` inherited), secondary text a lighter shade of it, and the controls and the overlay
 * panel the system colour pairs `Field`/`FieldText` and `Canvas`/`CanvasText`, which follow the
 * host's `color-scheme`: readable on light and dark pages alike.
 */

const STYLE_ID = "attnwidget-styles";

const CSS = `
.attnwidget { font: 13px/1.4 var(--jp-ui-font-family, system-ui, sans-serif); color: var(--jp-ui-font-color1); }
.attnwidget .aw-toolbar { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; }
.attnwidget label { display: inline-flex; gap: 4px; align-items: center; }
.attnwidget select, .attnwidget button { font: inherit; color: var(--jp-ui-font-color1, FieldText); background: var(--jp-layout-color1, Field); border: 1px solid var(--jp-border-color1, #b0b0b0); border-radius: 3px; padding: 1px 6px; }
.attnwidget button:disabled { opacity: 0.5; }
.attnwidget .aw-status { color: var(--jp-ui-font-color2, color-mix(in srgb, currentColor 72%, transparent)); margin: 4px 0 6px; min-height: 1.4em; overflow-wrap: anywhere; }
.attnwidget .aw-status[data-status="error"] { color: var(--jp-error-color1, #c62828); }
.attnwidget .aw-predictions { margin: 0 0 6px; overflow-wrap: anywhere; }
.attnwidget .aw-predictions:empty { display: none; }
.attnwidget .aw-body { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.attnwidget .aw-grid { display: block; cursor: pointer; max-width: 100%; }
.attnwidget .aw-grid:focus { outline: none; }
.attnwidget .aw-grid:focus-visible { outline: 2px solid var(--jp-brand-color1, #1976d2); outline-offset: 2px; }
.attnwidget .aw-hint, .attnwidget .aw-readout { color: var(--jp-ui-font-color2, color-mix(in srgb, currentColor 72%, transparent)); font-variant-numeric: tabular-nums; min-height: 1.4em; }
.attnwidget .aw-readout { white-space: pre-line; min-height: 2.8em; }
.attnwidget .aw-overlay { position: sticky; top: 0; max-width: 100%; box-sizing: border-box; padding: 8px; border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; background: var(--jp-layout-color1, Canvas); color: var(--jp-ui-font-color1, CanvasText); }
.attnwidget .aw-overlay[hidden], .attnwidget [hidden] { display: none; }
.attnwidget .aw-overlay-head { display: flex; justify-content: space-between; align-items: center; gap: 8px; margin-bottom: 6px; font-weight: 600; }
.attnwidget .aw-badge { font-weight: normal; color: var(--jp-ui-font-color2, color-mix(in srgb, currentColor 72%, transparent)); }
.attnwidget .aw-overlay canvas { display: block; max-width: 100%; }
.attnwidget .aw-picture { cursor: crosshair; }
.attnwidget .aw-picture:focus-visible { outline: 2px solid var(--jp-brand-color1, #1976d2); outline-offset: 2px; }
.attnwidget .aw-notice { border-left: 3px solid var(--jp-warn-color1, #b45309); padding-left: 6px; }
.attnwidget .aw-notice:empty { display: none; }
.attnwidget .aw-controls { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; margin-top: 6px; }
.attnwidget .aw-number { font-variant-numeric: tabular-nums; min-width: 3.5em; }
.attnwidget .aw-generated { margin: 0 0 8px; max-width: 100%; }
.attnwidget .aw-words { display: flex; flex-wrap: wrap; gap: 2px 1px; line-height: 1.6; overflow-wrap: anywhere; }
.attnwidget .aw-words:focus { outline: none; }
.attnwidget .aw-words:focus-visible { outline: 2px solid var(--jp-brand-color1, #1976d2); outline-offset: 2px; }
.attnwidget .aw-word { white-space: pre-wrap; padding: 0 2px; border-radius: 3px; cursor: pointer; }
.attnwidget .aw-word.aw-hovered { text-decoration: underline; }
.attnwidget .aw-word[aria-selected="true"] { background: var(--jp-layout-color3, Highlight); color: var(--jp-ui-font-color0, HighlightText); }
.attnwidget .aw-words:focus-visible .aw-word.aw-cursor { outline: 1px dashed currentColor; }
.attnwidget .aw-shares { margin-top: 6px; }
.attnwidget .aw-shares-scroll { overflow-x: auto; max-width: 100%; }
.attnwidget .aw-shares-plot { display: block; cursor: pointer; }
`;

/** Adds the widget's stylesheet to the document or shadow root holding `el`, unless it is there already. */
export function ensureStyles(el: HTMLElement): void {
  ensureStylesheet(el, STYLE_ID, CSS);
}

/** Adds `css` as `<style id=id>` to the document or shadow root holding `el`, unless it is there already. */
export function ensureStylesheet(el: HTMLElement, id: string, css: string): void {
  const root = el.getRootNode();
  const isShadow = typeof ShadowRoot !== "undefined" && root instanceof ShadowRoot;
  const host: ParentNode = isShadow ? root : el.ownerDocument.head;
  if (host.querySelector(`#${id}`)) return;
  const style = el.ownerDocument.createElement("style");
  style.id = id;
  style.textContent = css;
  host.append(style);
}
