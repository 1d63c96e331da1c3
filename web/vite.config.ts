// Builds the app into dist/, which `mnemo` embeds (crates/mnemo-api/src/web.rs).
import { defineConfig } from "vite";

export default defineConfig({
  // Preact's JSX runtime (tsconfig.json says the same to the type checker).
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Everything the page loads comes from the server itself (its CSP).
    assetsInlineLimit: 0,
  },
});
