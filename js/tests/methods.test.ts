import { describe, expect, it } from "vitest";
import { describePredictions, readExplanation, readMethod, readPredictions } from "../src/methods";
import type { WidgetModel } from "../src/model";

/** A model holding `traits`, odd values too: readers must cope with them. */
function model(traits: Record<string, unknown>): Pick<WidgetModel, "get"> {
  return { get: ((name: string) => traits[name]) as WidgetModel["get"] };
}

function float32(values: number[]): DataView {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((value, i) => view.setFloat32(i * 4, value, true));
  return view;
}

describe("methods", () => {
  it("reads unknown methods as per-head attention", () => {
    expect(readMethod(model({ method: "rollout" }))).toBe("rollout");
    expect(readMethod(model({ method: "<img src=x>" }))).toBe("attention");
    expect(readMethod(model({}))).toBe("attention");
  });

  it("reads the explanation only when it covers the patch grid", () => {
    const traits = { explanation: float32([0.5, 1, 2, 4]), explanation_title: "attention rollout" };
    const explanation = readExplanation(model(traits), 4);
    expect(Array.from(explanation?.values ?? [])).toEqual([0.5, 1, 2, 4]);
    expect(explanation?.title).toBe("attention rollout");
    expect(readExplanation(model(traits), 6)).toBeNull(); // stale: another grid
    expect(readExplanation(model({ explanation: new DataView(new ArrayBuffer(7)) }), 1)).toBeNull(); // truncated
    expect(readExplanation(model({}), 4)).toBeNull();
  });

  it("reads predictions, skipping malformed entries, and describes them as text", () => {
    const predictions = readPredictions(
      model({ predictions: [{ label: "<b>tabby</b>", probability: 0.412 }, null, { label: "x", probability: "NaN" }, { label: "tiger cat", probability: 0.3 }] }),
    );
    expect(predictions).toEqual([
      { label: "<b>tabby</b>", probability: 0.412 },
      { label: "tiger cat", probability: 0.3 },
    ]);
    expect(describePredictions(predictions)).toBe("<b>tabby</b> 41.2% · tiger cat 30.0%");
    expect(readPredictions(model({ predictions: "oops" }))).toEqual([]);
  });
});
