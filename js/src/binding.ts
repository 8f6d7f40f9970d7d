/**
 * Binds a widget model to an `AttentionStore`: data traits, `run_id`, `query` and custom messages
 * flow into the store. One store per model is shared by all its views (see index.ts).
 */
import { DATA_TRAITS, type GridTraits, MAP_TRAITS, MATRIX_TRAITS } from "./contract";
import { type WidgetModel, readCount, readDataTraits, readQuery } from "./model";
import { AttentionStore } from "./store";

type TraitName = keyof GridTraits & string;

/**
 * Feeds `store` from `model` from now on; returns the function that stops it. Changes that arrive
 * together (one kernel update sets several traits) are applied once, after the last of them.
 */
export function bindStore(model: WidgetModel, store: AttentionStore): () => void {
  const changed = new Set<TraitName>();
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    // A run that ends holds the data traits as they are now, also those equal to the last run's
    // (a new query leaves the matrices as they were): the kernel sends no change for those.
    const ended = changed.has("status") && model.get("status") === "done";
    const data = ended || DATA_TRAITS.some((name) => changed.has(name));
    const touched = (names: readonly TraitName[]): boolean => ended || names.some((name) => changed.has(name));
    if (data) store.applyTraits(readDataTraits(model), { maps: touched(MAP_TRAITS), matrices: touched(MATRIX_TRAITS) });
    else if (changed.has("run_id")) store.applyRunId(readCount(model, "run_id"));
    if (data || changed.has("query")) store.applyQuery(readQuery(model));
    changed.clear();
  };
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(flush);
  };
  const on = (name: TraitName) => (): void => {
    changed.add(name);
    schedule();
  };
  const onMessage = (message: unknown, buffers?: readonly unknown[]): void => {
    if (scheduled) flush();
    store.applyMessage(message, buffers ?? []);
  };

  store.applyTraits(readDataTraits(model));
  const followed: readonly TraitName[] = [...DATA_TRAITS, "run_id", "query", "status"];
  const listeners: [`change:${TraitName}` | "msg:custom", (...args: never[]) => void][] = [
    ...followed.map((name): [`change:${TraitName}`, () => void] => [`change:${name}`, on(name)]),
    ["msg:custom", onMessage],
  ];
  for (const [event, callback] of listeners) model.on(event, callback);
  return () => {
    for (const [event, callback] of listeners) model.off(event, callback);
  };
}
