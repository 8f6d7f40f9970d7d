/**
 * attnwidget front-end (anywidget module): `initialize` binds each model to a data store once, so
 * layers streamed before any view exists are kept, and links it to its statistics panel; `render`
 * draws a view of it.
 */
import { bindStore, findStore } from "./binding";
import { type ModelLookup, followHeadDots } from "./dots";
import type { WidgetModel } from "./model";
import { AttentionStore } from "./store";
import { renderView } from "./view";

/** The model handle anywidget passes to `initialize`, with the widget manager that finds other models. */
type InitializedModel = WidgetModel & { widget_manager?: ModelLookup };

/** Binds the model's data store and panel link; returns the cleanup anywidget calls when the model goes away. */
function initialize({ model }: { model: InitializedModel }): () => void {
  const unbind = bindStore(model, new AttentionStore());
  const unlink = followHeadDots(model, model.widget_manager);
  return () => {
    unlink();
    unbind();
  };
}

/** Renders one view into `el`; returns the cleanup that removes it and its listeners. */
function render({ model, el }: { model: InitializedModel; el: HTMLElement }): () => void {
  const shared = findStore(model);
  if (shared) return renderView(model, el, shared);
  // A host that did not call `initialize` (or hides the model's identity): this view keeps its own store and link.
  const store = new AttentionStore();
  const unbind = bindStore(model, store);
  const unlink = followHeadDots(model, model.widget_manager);
  const remove = renderView(model, el, store);
  return () => {
    remove();
    unlink();
    unbind();
  };
}

export default { initialize, render };
