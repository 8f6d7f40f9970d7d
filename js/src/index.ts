/**
 * attnwidget front-end (anywidget module). The default export is anywidget's per-model factory: the
 * host calls it once for each widget model, so that model's data store and its link to the
 * statistics panel live in the closure it returns, shared by all the model's views. `initialize`
 * creates them (layers streamed before any view exists are kept); `render` draws a view of them.
 */
import { bindStore } from "./binding";
import { type ModelLookup, followHeadDots } from "./dots";
import type { WidgetModel } from "./model";
import { AttentionStore } from "./store";
import { renderView } from "./view";

/** The model handle anywidget passes to `initialize` and `render`, with the widget manager that finds other models. */
type HostModel = WidgetModel & { widget_manager?: ModelLookup };

/** What the factory returns for one model. */
export interface WidgetDefinition {
  /** Binds the model's data store and panel link; returns the cleanup anywidget calls when the model goes away. */
  initialize(context: { model: HostModel }): () => void;
  /** Renders one view into `el`; returns the cleanup that removes it and its listeners. */
  render(context: { model: HostModel; el: HTMLElement }): () => void;
}

interface ModelState {
  readonly store: AttentionStore;
  dispose(): void;
}

function bindModel(model: HostModel): ModelState {
  const store = new AttentionStore();
  const unbind = bindStore(model, store);
  const unlink = followHeadDots(model, model.widget_manager);
  return {
    store,
    dispose: () => {
      unlink();
      unbind();
    },
  };
}

export default function widgetForModel(): WidgetDefinition {
  let state: ModelState | null = null;
  return {
    initialize({ model }) {
      const bound = bindModel(model);
      state = bound;
      return () => {
        bound.dispose();
        if (state === bound) state = null;
      };
    },
    render({ model, el }) {
      if (state) return renderView(model, el, state.store);
      // anywidget calls `initialize` before any `render`; a host that does not gets a store for this view alone.
      const own = bindModel(model);
      const remove = renderView(model, el, own.store);
      return () => {
        remove();
        own.dispose();
      };
    },
  };
}
