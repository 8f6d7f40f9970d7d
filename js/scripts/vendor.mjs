// Copies the scripts a standalone HTML page needs to show widgets with no network (see
// attnwidget/export.py) next to the widget bundle: the Jupyter widgets HTML manager and RequireJS.
import { copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const target = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "attnwidget", "static");
mkdirSync(target, { recursive: true });
const packageDir = (name) => dirname(require.resolve(`${name}/package.json`));
copyFileSync(join(packageDir("@jupyter-widgets/html-manager"), "dist", "embed-amd.js"), join(target, "embed-amd.js"));
copyFileSync(join(packageDir("requirejs"), "require.js"), join(target, "require.js"));
