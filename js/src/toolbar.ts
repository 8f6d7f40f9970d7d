/**
 * The view's toolbar: view, colours, normalisation, method and its rollout options, the picture of
 * `run_many` and "Save PNG". Its controls follow the model's traits (`sync`) and write them back.
 */
import { percent } from "./captions";
import {
  COLORMAPS,
  GRID_DEFAULTS,
  MAX_DISCARD_RATIO,
  METHODS,
  NORMALIZE_SCOPES,
  type NormalizeScope,
  ROLLOUT_FUSIONS,
  type RolloutFusion,
  VIEWS,
  type View,
} from "./contract";
import { choiceSelect, element, labelledSelect, syncSelect, syncText } from "./dom";
import { methodLabel, readMethod, rolloutOptions } from "./methods";
import { type WidgetModel, isOneOf, readCount, readViewState, saveTraits } from "./model";

const VIEW_LABELS: Record<View, string> = { query: "query → patches", matrix: "token × token" };
const NORMALIZE_LABELS: Record<NormalizeScope, string> = { head: "per head", layer: "per layer", global: "global" };

export class Toolbar {
  readonly root: HTMLDivElement;
  readonly saveButton: HTMLButtonElement;
  private readonly viewSelect: HTMLSelectElement;
  private readonly colormapSelect: HTMLSelectElement;
  private readonly normalizeSelect: HTMLSelectElement;
  private readonly methodSelect: HTMLSelectElement;
  private readonly fusion: { label: HTMLLabelElement; select: HTMLSelectElement; chosen(): RolloutFusion };
  private readonly discardSlider: HTMLInputElement;
  private readonly discardText: HTMLSpanElement;
  private readonly discardLabel: HTMLLabelElement;
  private readonly start: { label: HTMLLabelElement; select: HTMLSelectElement };
  private readonly pictureSlider: HTMLInputElement;
  private readonly pictureText: HTMLSpanElement;
  private readonly pictureLabel: HTMLLabelElement;
  private readonly listeners: [EventTarget, string, EventListener][];

  constructor(private readonly doc: Document, private readonly model: WidgetModel) {
    const view = choiceSelect(doc, "View", "attnwidget-view", VIEWS, (value) => VIEW_LABELS[value]);
    const colormap = choiceSelect(doc, "Colours", "attnwidget-colormap", COLORMAPS);
    const normalize = choiceSelect(doc, "Normalise", "attnwidget-normalize", NORMALIZE_SCOPES, (scope) => NORMALIZE_LABELS[scope]);
    const method = choiceSelect(doc, "Method", "attnwidget-method", METHODS, methodLabel);
    this.fusion = choiceSelect(doc, "Fusion", "attnwidget-rollout-fusion", ROLLOUT_FUSIONS);
    this.discardSlider = element(doc, "input", {
      testId: "attnwidget-discard",
      attrs: { type: "range", min: "0", max: String(MAX_DISCARD_RATIO), step: "0.01", "aria-label": "Discard ratio" },
    });
    this.discardText = element(doc, "span", { className: "aw-number" });
    this.discardLabel = element(doc, "label", { attrs: { title: "Share of each layer's smallest attention weights set to zero (never the CLS column)" } }, [
      doc.createTextNode("Discard "),
      this.discardSlider,
      this.discardText,
    ]);
    this.start = labelledSelect(doc, "From layer", "attnwidget-start-layer", []);
    this.saveButton = element(doc, "button", {
      testId: "attnwidget-save-png",
      text: "Save PNG",
      attrs: { type: "button", title: "Download the grid (and the open overlay) as shown, as a PNG file" },
    });
    this.pictureSlider = element(doc, "input", { testId: "attnwidget-image-index", attrs: { type: "range", min: "0", step: "1", "aria-label": "Picture" } });
    this.pictureText = element(doc, "span", { className: "aw-number" });
    this.pictureLabel = element(doc, "label", {}, [doc.createTextNode("Picture "), this.pictureSlider, this.pictureText]);
    [this.viewSelect, this.colormapSelect, this.normalizeSelect, this.methodSelect] = [view.select, colormap.select, normalize.select, method.select];
    this.root = element(doc, "div", { className: "aw-toolbar" }, [
      view.label,
      colormap.label,
      normalize.label,
      method.label,
      this.fusion.label,
      this.discardLabel,
      this.start.label,
      this.pictureLabel,
      this.saveButton,
    ]);
    this.listeners = [
      [view.select, "change", () => saveTraits(model, { view: view.chosen() })],
      [colormap.select, "change", () => saveTraits(model, { colormap: colormap.chosen() })],
      [normalize.select, "change", () => saveTraits(model, { normalize: normalize.chosen() })],
      [this.fusion.select, "change", () => saveTraits(model, { rollout_fusion: this.fusion.chosen() })],
      // The readout follows the thumb; the kernel recomputes once the thumb is released.
      [this.discardSlider, "input", () => syncText(this.discardText, percent(Number(this.discardSlider.value)))],
      [this.discardSlider, "change", () => saveTraits(model, { discard_ratio: Number(this.discardSlider.value) })],
      [this.start.select, "change", () => saveTraits(model, { start_layer: Number(this.start.select.value) })],
      [this.pictureSlider, "change", () => saveTraits(model, { image_index: Number(this.pictureSlider.value) })],
      [method.select, "change", () => saveTraits(model, { method: method.chosen(), overlay_open: true })],
    ];
    for (const [target, type, listener] of this.listeners) target.addEventListener(type, listener);
  }

  /** Shows the traits' current values. */
  sync(): void {
    const model = this.model;
    const state = readViewState(model);
    syncSelect(this.viewSelect, state.view);
    syncSelect(this.colormapSelect, state.colormap);
    syncSelect(this.normalizeSelect, state.normalize);
    syncSelect(this.methodSelect, readMethod(model));
    this.syncRolloutOptions();
    const pictureCount = readCount(model, "image_count");
    const picture = Math.min(readCount(model, "image_index"), Math.max(0, pictureCount - 1));
    this.pictureLabel.hidden = pictureCount < 2;
    this.pictureSlider.max = String(Math.max(0, pictureCount - 1));
    if (this.pictureSlider.value !== String(picture)) this.pictureSlider.value = String(picture);
    syncText(this.pictureText, ` ${picture + 1} / ${pictureCount}`);
  }

  /** Removes its listeners. */
  dispose(): void {
    for (const [target, type, listener] of this.listeners) target.removeEventListener(type, listener);
  }

  /** The rollout options of the chosen method, with the start layers of this model. */
  private syncRolloutOptions(): void {
    const model = this.model;
    const shown = rolloutOptions(readMethod(model));
    this.fusion.label.hidden = !shown.includes("fusion");
    this.discardLabel.hidden = !shown.includes("discard");
    this.start.label.hidden = !shown.includes("start");
    const layers = readCount(model, "layer_count");
    const startSelect = this.start.select;
    if (startSelect.options.length !== layers) {
      startSelect.replaceChildren(
        ...Array.from({ length: layers }, (_, i) => element(this.doc, "option", { text: String(i + 1), attrs: { value: String(i + 1) } })),
      );
    }
    const fusion = model.get("rollout_fusion");
    syncSelect(this.fusion.select, isOneOf(ROLLOUT_FUSIONS, fusion) ? fusion : GRID_DEFAULTS.rollout_fusion);
    const discard = Math.min(MAX_DISCARD_RATIO, Math.max(0, Number(model.get("discard_ratio")) || 0));
    if (Number(this.discardSlider.value) !== discard) this.discardSlider.value = String(discard);
    syncText(this.discardText, percent(discard));
    syncSelect(startSelect, String(readCount(model, "start_layer") || 1));
  }
}
