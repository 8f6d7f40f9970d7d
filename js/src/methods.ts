/**
 * The interpretability methods the kernel computes (`attnwidget/explain.py`), the map it sends for
 * the chosen one (`explanation`, float32 over the patch grid) and the model's top predictions.
 */
import { GRID_DEFAULTS, METHODS, METHOD_LABELS, type Method, ROLLOUT_OPTIONS } from "./contract";
import { readFloat32 } from "./decode";
import { type WidgetModel, isOneOf } from "./model";

/** The rollout options (`rollout_fusion`, `discard_ratio`, `start_layer`) that `method` takes. */
export function rolloutOptions(method: Method): readonly string[] {
  return (ROLLOUT_OPTIONS as Partial<Record<Method, readonly string[]>>)[method] ?? [];
}

/** The menu label of `method`. */
export function methodLabel(method: Method): string {
  return METHOD_LABELS[method];
}

export interface Prediction {
  readonly label: string;
  readonly probability: number;
}

/** The `method` trait; "attention" (one head at a time) when unset or unknown. */
export function readMethod(model: Pick<WidgetModel, "get">): Method {
  const value = model.get("method");
  return isOneOf(METHODS, value) ? value : GRID_DEFAULTS.method;
}

/** The `mask_mass` trait: the share of the map a DINO mask keeps, 0 (no mask) when unset or out of range. */
export function readMaskMass(model: Pick<WidgetModel, "get">): number {
  const value = Number(model.get("mask_mass"));
  return value > 0 && value <= 1 ? value : 0;
}

/** The chosen method's map (gh * gw values) and its title, or `null` while there is none. */
export function readExplanation(model: Pick<WidgetModel, "get">, cells: number): { values: Float32Array; title: string } | null {
  try {
    const values = readFloat32(model.get("explanation"), "explanation");
    if (values.length === 0 || values.length !== cells) return null;
    const title = model.get("explanation_title");
    return { values, title: typeof title === "string" ? title : "" };
  } catch {
    return null;
  }
}

/** The `predictions` trait: labels with probabilities, most probable first; odd entries are skipped. */
export function readPredictions(model: Pick<WidgetModel, "get">): Prediction[] {
  const value = model.get("predictions");
  if (!Array.isArray(value)) return [];
  return value.flatMap((entry) => {
    if (typeof entry !== "object" || entry === null) return [];
    const { label, probability } = entry as Record<string, unknown>;
    return typeof probability === "number" && Number.isFinite(probability) ? [{ label: String(label), probability }] : [];
  });
}

/** "tabby 41.2% · tiger cat 30.0%": plain text, shown with `textContent`, never as HTML. */
export function describePredictions(predictions: readonly Prediction[], count = 3): string {
  return predictions
    .slice(0, count)
    .map(({ label, probability }) => `${label} ${(probability * 100).toFixed(1)}%`)
    .join(" · ");
}
