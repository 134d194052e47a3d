// A minimal stand-in for a report page under Node.js (no browser): the elements explorer.js uses, canvases that keep
// what was last painted on them (RGBA bytes), and the page's decoder.js and explorer.js run in it.
// Usage: const { window, document } = require("./page.js").open("report.html");
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const assets = path.join(__dirname, "../../src/betavae/assets");

class Element {
  constructor(tag) {
    Object.assign(this, { tag, children: [], style: {}, dataset: {}, listeners: {}, value: "", textContent: "" });
    Object.assign(this, { width: 440, height: 440, painted: null });
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
    return { createImageData: (w, h) => ({ data: new Uint8ClampedArray(4 * w * h) }),
             putImageData: (image) => { this.painted = Array.from(image.data); },
             clearRect: ignore, fillRect: ignore, strokeRect: ignore };
  }
}

function open(report) {
  const page = fs.readFileSync(report, "utf8");
  const payload = page.split('id="explorer-data">')[1].split("</script>")[0];
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
  return { window, document };
}

module.exports = { open };
