/**
 * The overlay's row of display controls: opacity, interpolation, colours and the DINO mask. It
 * shows a scene's settings and hands the user's changes to the overlay's actions; opacity,
 * interpolation and mask apply to the query view only and are hidden in the matrix view.
 */
import { COLORMAPS, type ColormapName, INTERPOLATIONS, type Interpolation } from "./contract";
import { choiceSelect, element, labelledSelect, syncSelect, syncText } from "./dom";

/** What the controls show of a scene. */
export interface ControlSettings {
  readonly queryMode: boolean;
  readonly alpha: number;
  readonly interpolation: Interpolation;
  readonly colormap: ColormapName;
  readonly maskMass: number;
}

/** What the controls ask for. */
export interface ControlActions {
  /** `final` is false while the slider is being dragged. */
  setAlpha(alpha: number, final: boolean): void;
  setInterpolation(mode: Interpolation): void;
  setColormap(name: ColormapName): void;
  setMaskMass(mass: number): void;
}

const MASK_MASSES = [0.5, 0.6, 0.7, 0.8, 0.9];
const MASK_CHOICES: readonly (readonly [string, string])[] = [["0", "off"], ...MASK_MASSES.map((mass) => [String(mass), `DINO ${Math.round(mass * 100)}%`] as const)];

/** The menu entry of a mass: its own when listed, "off" for 0 or anything else. */
function maskChoice(mass: number): string {
  return MASK_MASSES.includes(mass) ? String(mass) : "0";
}

export class OverlayControls {
  readonly root: HTMLDivElement;
  private readonly alpha: HTMLInputElement;
  private readonly alphaText: HTMLSpanElement;
  private readonly alphaLabel: HTMLLabelElement;
  private readonly interpolation: HTMLSelectElement;
  private readonly interpolationLabel: HTMLLabelElement;
  private readonly colormap: HTMLSelectElement;
  private readonly mask: HTMLSelectElement;
  private readonly maskLabel: HTMLLabelElement;

  constructor(doc: Document, actions: ControlActions) {
    this.alpha = element(doc, "input", { testId: "attnwidget-alpha", attrs: { type: "range", min: "0", max: "1", step: "0.05" } });
    this.alphaText = element(doc, "span", { className: "aw-number" });
    this.alphaLabel = element(doc, "label", {}, [doc.createTextNode("Opacity "), this.alpha, this.alphaText]);
    const interpolation = choiceSelect(doc, "Interpolation", "attnwidget-interpolation", INTERPOLATIONS);
    this.interpolation = interpolation.select;
    this.interpolationLabel = interpolation.label;
    const colormap = choiceSelect(doc, "Colours", "attnwidget-overlay-colormap", COLORMAPS);
    this.colormap = colormap.select;
    const mask = labelledSelect(doc, "Mask", "attnwidget-mask", MASK_CHOICES);
    this.mask = mask.select;
    this.maskLabel = mask.label;
    this.root = element(doc, "div", { className: "aw-controls" }, [this.alphaLabel, interpolation.label, colormap.label, mask.label]);

    this.alpha.addEventListener("input", () => actions.setAlpha(Number(this.alpha.value), false));
    this.alpha.addEventListener("change", () => actions.setAlpha(Number(this.alpha.value), true));
    this.interpolation.addEventListener("change", () => actions.setInterpolation(interpolation.chosen()));
    this.colormap.addEventListener("change", () => actions.setColormap(colormap.chosen()));
    this.mask.addEventListener("change", () => actions.setMaskMass(Number(this.mask.value)));
  }

  /** Shows `settings`, leaving alone what already shows them (a slider being dragged keeps its place). */
  sync(settings: ControlSettings): void {
    const alpha = String(settings.alpha);
    if (this.alpha.value !== alpha) this.alpha.value = alpha;
    syncText(this.alphaText, ` ${Math.round(settings.alpha * 100)}%`);
    syncSelect(this.interpolation, settings.interpolation);
    syncSelect(this.colormap, settings.colormap);
    syncSelect(this.mask, maskChoice(settings.maskMass));
    const queryOnly = !settings.queryMode;
    this.alpha.disabled = this.interpolation.disabled = this.mask.disabled = queryOnly;
    this.alphaLabel.hidden = this.interpolationLabel.hidden = this.maskLabel.hidden = queryOnly;
  }
}
