/** The picture under the overlay: decoded from the `image` trait's JPEG bytes. */
import { asBytes } from "./decode";

/** A decoded picture and its size in pixels. */
export interface Picture {
  readonly source: CanvasImageSource;
  readonly width: number;
  readonly height: number;
}

/**
 * Decodes the `image` trait (JPEG bytes) and hands the picture to `ready`; a later call supersedes
 * an earlier one still decoding. Empty or undecodable bytes give `null`.
 */
export class PictureLoader {
  private payload: unknown = undefined;
  private release: (() => void) | null = null;

  constructor(private readonly doc: Document, private readonly ready: (picture: Picture | null) => void) {}

  /** Starts decoding `payload` unless it is the one already loaded. */
  load(payload: unknown): void {
    if (payload === this.payload) return;
    this.payload = payload;
    let bytes: Uint8Array;
    try {
      bytes = asBytes(payload, "image");
    } catch (error) {
      console.warn("attnwidget:", error);
      bytes = new Uint8Array(0);
    }
    if (bytes.length === 0) return this.replace(null, () => undefined);
    const blob = new Blob([bytes.slice()], { type: "image/jpeg" });
    const view = this.doc.defaultView;
    const finish = (picture: Picture | null, release: () => void): void => {
      if (this.payload === payload) this.replace(picture, release);
      else release();
    };
    if (view && typeof view.createImageBitmap === "function") {
      view.createImageBitmap(blob).then(
        (bitmap) => finish({ source: bitmap, width: bitmap.width, height: bitmap.height }, () => bitmap.close()),
        (error: unknown) => {
          console.warn("attnwidget: could not decode the picture", error);
          finish(null, () => undefined);
        },
      );
      return;
    }
    if (!view || typeof view.URL?.createObjectURL !== "function") return this.replace(null, () => undefined);
    const url = view.URL.createObjectURL(blob);
    const image = this.doc.createElement("img");
    image.onload = () => finish({ source: image, width: image.naturalWidth, height: image.naturalHeight }, () => view.URL.revokeObjectURL(url));
    image.onerror = () => finish(null, () => view.URL.revokeObjectURL(url));
    image.src = url;
  }

  /** Frees the decoded picture. */
  dispose(): void {
    this.release?.();
    this.release = null;
    this.payload = undefined;
  }

  /** Hands over `picture`, then frees the one it replaces (never while it may still be drawn). */
  private replace(picture: Picture | null, release: () => void): void {
    const previous = this.release;
    this.release = release;
    this.ready(picture);
    previous?.();
  }
}
