// The report's explorer.js under Node.js, in a minimal stand-in for the page (no browser): for each sampler the
// "draw from" list offers, choose it, press "draw z", and print what was drawn and which labels were offered, as JSON.
// Usage: node explorer_draws.js report.html
"use strict";
const { window, document } = require("./page.js").open(process.argv[2]);

const draws = {};
const sampler = document.getElementById("sampler"), digit = document.getElementById("digit");
for (const option of sampler.options) {
  sampler.value = option.value;
  sampler.dispatchEvent({ type: "change" });
  document.getElementById("draw-z").click();
  draws[option.value] = Object.assign({}, window.explorer.lastDraw, {
    labels_offered: digit.options.map((o) => o.value), labels_shown: digit.style.display !== "none" });
}
process.stdout.write(JSON.stringify(draws));
