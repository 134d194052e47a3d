// The report's explorer.js under Node.js, in a minimal stand-in for the page (no browser): for each sampler the
// "draw from" list offers, choose it, press "draw z", and print what was drawn and which labels were offered, as JSON.
// Usage: node explorer_draws.js report.html
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const page = fs.readFileSync(process.argv[2], "utf8");
const payload = page.split('id="explorer-data">')[1].split("</script>")[0];
const assets = path.join(__dirname, "../../src/betavae/assets");

class Element {
  constructor(tag) {
    Object.assign(this, { tag, children: [], style: {}, dataset: {}, listeners: {}, value: "", textContent: "" });
    Object.assign(this, { width: 440, height: 440 });
  }
  append(...items) {
    this.children.push(...items);
    if (this.tag === "select" && this.value === "" && this.children.length) this.value = this.children[0].value;
  }
  replaceChildren(...items) { this.children = []; this.value = ""; this.append(...items); }
  addEventListener(type, listener) { (this.listeners[type] = this.listeners[type] || []).push(listener); }
  dispatchEvent(event) { for (const listener of this.listeners[event.type] || []) listener(event); }
  click() { this.dispatchEvent({ type: "click" }); }
  get options() { return this.children; }
  getBoundingClientRect() { return { left: 0, top: 0, width: this.width, height: this.height }; }
  getContext() {
    const ignore = () => {};
    return { createImageData: (w, h) => ({ data: new Uint8ClampedArray(4 * w * h) }), putImageData: ignore,
             clearRect: ignore, fillRect: ignore, strokeRect: ignore };
  }
}

const elements = {};
const document = {
  getElementById(id) {
    if (id === "explorer-data") return { textContent: payload };
    return elements[id] = elements[id] || new Element(id === "sampler" || id === "digit" ? "select" : "div");
  },
  createElement: (tag) => new Element(tag),
};
const window = {};
const context = vm.createContext({
  window, document, Option: function (text, value) { return Object.assign(new Element("option"), { text, value }); },
  Event: function (type) { this.type = type; }, performance: { now: () => 0 },
  atob: (text) => Buffer.from(text, "base64").toString("binary"),
});
for (const name of ["decoder.js", "explorer.js"]) {
  vm.runInContext(fs.readFileSync(path.join(assets, name), "utf8"), context, { filename: name });
}

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
