// The report's explorer.js under Node.js, in a minimal stand-in for the page (no browser): set the sliders to each
// latent vector of a JSON file and keep what the "decoded" canvas shows; choose map point 0 and keep what the
// "original" canvas shows. Prints {decoded: [RGBA bytes per vector], original: RGBA bytes} as JSON.
// Usage: node explorer_paints.js report.html latents.json
"use strict";
const fs = require("fs");
const { window, document } = require("./page.js").open(process.argv[2]);

const decoded = JSON.parse(fs.readFileSync(process.argv[3], "utf8")).map((z) => {
  window.explorer.setLatent(z);
  return document.getElementById("decoded").painted;
});
window.explorer.select(0);
process.stdout.write(JSON.stringify({ decoded, original: document.getElementById("original").painted }));
