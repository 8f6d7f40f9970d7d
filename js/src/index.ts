/**
 * attnwidget front-end (anywidget module): `initialize` binds each model to a data store once, so
 * layers streamed before any view exists are kept; `render` draws a view of it.
 */
import { bindStore, findStore } from "./binding";
import type { WidgetModel } from "./model";
import { AttentionStore } from "./store";
import { renderView } from "./view";

/** Binds the model's data store; returns the cleanup anywidget calls when the model goes away. */
function initialize({ model }: { model: WidgetModel }): () => void {
  return bindStore(model, new AttentionStore());
}

/** Renders one view into `el`; returns the cleanup that removes it and its listeners. */
function render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
  const shared = findStore(model);
  if (shared) return renderView(model, el, shared);
  // A host that did not call `initialize` (or hides the model's identity): this view keeps its own store.
  const store = new AttentionStore();
  const unbind = bindStore(model, store);
  const remove = renderView(model, el, store);
  return () => {
    remove();
    unbind();
  };
}

export default { initialize, render };
