/** The widget's styles, injected once per document (or shadow root) in a `<style>` element. */

const STYLE_ID = "attnwidget-styles";

const CSS = `
.attnwidget { font: 13px/1.4 var(--jp-ui-font-family, system-ui, sans-serif); color: var(--jp-ui-font-color1, #1f1f1f); }
.attnwidget .aw-toolbar { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; }
.attnwidget label { display: inline-flex; gap: 4px; align-items: center; }
.attnwidget select, .attnwidget button { font: inherit; color: inherit; background: var(--jp-layout-color1, #fff); border: 1px solid var(--jp-border-color1, #b0b0b0); border-radius: 3px; padding: 1px 6px; }
.attnwidget button:disabled { opacity: 0.5; }
.attnwidget .aw-status { color: var(--jp-ui-font-color2, #555); margin: 4px 0 6px; min-height: 1.4em; overflow-wrap: anywhere; }
.attnwidget .aw-status[data-status="error"] { color: var(--jp-error-color1, #c62828); }
.attnwidget .aw-predictions { margin: 0 0 6px; overflow-wrap: anywhere; }
.attnwidget .aw-predictions:empty { display: none; }
.attnwidget .aw-body { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.attnwidget .aw-grid { display: block; cursor: pointer; max-width: 100%; }
.attnwidget .aw-grid:focus { outline: none; }
.attnwidget .aw-grid:focus-visible { outline: 2px solid var(--jp-brand-color1, #1976d2); outline-offset: 2px; }
.attnwidget .aw-hint, .attnwidget .aw-readout { color: var(--jp-ui-font-color2, #555); font-variant-numeric: tabular-nums; min-height: 1.4em; }
.attnwidget .aw-readout { white-space: pre-line; min-height: 2.8em; }
.attnwidget .aw-overlay { position: sticky; top: 0; max-width: 100%; box-sizing: border-box; padding: 8px; border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; background: var(--jp-layout-color1, #fff); }
.attnwidget .aw-overlay[hidden], .attnwidget [hidden] { display: none; }
.attnwidget .aw-overlay-head { display: flex; justify-content: space-between; align-items: center; gap: 8px; margin-bottom: 6px; font-weight: 600; }
.attnwidget .aw-badge { font-weight: normal; color: var(--jp-ui-font-color2, #555); }
.attnwidget .aw-overlay canvas { display: block; max-width: 100%; }
.attnwidget .aw-picture { cursor: crosshair; }
.attnwidget .aw-picture:focus-visible { outline: 2px solid var(--jp-brand-color1, #1976d2); outline-offset: 2px; }
.attnwidget .aw-notice { color: var(--jp-warn-color1, #b45309); }
.attnwidget .aw-notice:empty { display: none; }
.attnwidget .aw-controls { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; margin-top: 6px; }
.attnwidget .aw-number { font-variant-numeric: tabular-nums; min-width: 3.5em; }
`;

/** Adds the stylesheet to the document or shadow root holding `el`, unless it is there already. */
export function ensureStyles(el: HTMLElement): void {
  const root = el.getRootNode();
  const isShadow = typeof ShadowRoot !== "undefined" && root instanceof ShadowRoot;
  const host: ParentNode = isShadow ? root : el.ownerDocument.head;
  if (host.querySelector(`#${STYLE_ID}`)) return;
  const style = el.ownerDocument.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  host.append(style);
}
