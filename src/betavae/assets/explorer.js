// The latent explorer of a betavae report: one slider per latent dimension (largest KL first), a live decoding, and
// the 2-D map of posterior means, where a click shows that image and moves the sliders to its mean.
(function () {
  "use strict";
  const D = window.BetaVAEDecoder;
  const spec = JSON.parse(document.getElementById("explorer-data").textContent);
  const layers = D.prepare(spec.layers);
  const [channels, height, width] = spec.image_shape;
  const latentDim = spec.latent_dim;
  const means = D.fromBase64(spec.points.means);
  const xy = D.fromBase64(spec.points.xy);
  const pixels = Uint8Array.from(atob(spec.points.images), (c) => c.charCodeAt(0));
  const nPoints = spec.points.labels.length;
  const z = new Float64Array(latentDim);
  const state = { lastMs: null, lastProbabilities: null, ready: false, selected: -1, decodes: 0, z };
  window.explorer = state;

  // Paint C*H*W values, channel by channel as the decoder orders them: grey for one channel, RGB for three.
  function draw(canvas, values, scale) {
    const context = canvas.getContext("2d");
    const image = context.createImageData(width, height), area = width * height;
    for (let i = 0; i < area; i++) {
      for (let rgb = 0; rgb < 3; rgb++) {
        image.data[4 * i + rgb] = Math.round(values[(channels === 3 ? rgb * area : 0) + i] * scale);
      }
      image.data[4 * i + 3] = 255;
    }
    context.putImageData(image, 0, 0);
  }

  function render() {
    const start = performance.now();
    const probabilities = D.decode(layers, z, spec.likelihood);
    draw(document.getElementById("decoded"), probabilities, 255);
    state.lastMs = performance.now() - start;
    state.lastProbabilities = Array.from(probabilities);
    state.decodes += 1;
    document.getElementById("decode-time").textContent = state.lastMs.toFixed(1) + " ms";
  }

  const sliders = [];
  function buildSliders() {
    const box = document.getElementById("sliders");
    for (const dim of spec.order) {
      const row = document.createElement("label");
      row.className = "slider";
      const name = document.createElement("span");
      name.textContent = "z" + dim;
      const input = document.createElement("input");
      Object.assign(input, { type: "range", min: -spec.range, max: spec.range, step: 0.01, value: 0 });
      input.dataset.dim = dim;
      const value = document.createElement("output");
      const kl = document.createElement("small");
      kl.textContent = "KL " + spec.kl[dim].toFixed(2);
      input.addEventListener("input", () => {
        z[dim] = parseFloat(input.value);
        value.textContent = z[dim].toFixed(2);
        render();
      });
      row.append(name, input, value, kl);
      box.append(row);
      sliders[dim] = { input, value };
    }
  }

  function setLatent(vector) {
    for (let d = 0; d < latentDim; d++) {
      z[d] = vector[d];
      sliders[d].input.value = vector[d];
      sliders[d].value.textContent = vector[d].toFixed(2);
    }
    render();
  }

  // The map: points scaled into the canvas, coloured by label.
  const map = document.getElementById("map");
  let bounds;
  function toCanvas(i) {
    const [x0, x1, y0, y1] = bounds, pad = 8;
    return [pad + ((xy[2 * i] - x0) / (x1 - x0 || 1)) * (map.width - 2 * pad),
            map.height - pad - ((xy[2 * i + 1] - y0) / (y1 - y0 || 1)) * (map.height - 2 * pad)];
  }
  function drawMap() {
    const context = map.getContext("2d");
    context.clearRect(0, 0, map.width, map.height);
    for (let i = 0; i < nPoints; i++) {
      const [px, py] = toCanvas(i), label = spec.points.labels[i];
      context.fillStyle = label >= 0 ? spec.palette[label % spec.palette.length] : "#555";
      context.fillRect(px - 1.5, py - 1.5, 3, 3);
    }
    if (state.selected >= 0) {
      const [px, py] = toCanvas(state.selected);
      context.strokeStyle = "#000";
      context.lineWidth = 2;
      context.strokeRect(px - 5, py - 5, 10, 10);
    }
  }

  function select(i) {
    state.selected = i;
    const size = channels * width * height;
    draw(document.getElementById("original"), pixels.subarray(i * size, (i + 1) * size), 1);
    document.getElementById("selected").textContent =
      "image " + spec.points.indices[i] + (spec.points.labels[i] >= 0 ? ", label " + spec.points.labels[i] : "");
    setLatent(means.subarray(i * latentDim, (i + 1) * latentDim));
    drawMap();
  }

  map.addEventListener("click", (event) => {
    const box = map.getBoundingClientRect();
    const cx = (event.clientX - box.left) * (map.width / box.width);
    const cy = (event.clientY - box.top) * (map.height / box.height);
    let best = -1, bestDistance = Infinity;
    for (let i = 0; i < nPoints; i++) {
      const [px, py] = toCanvas(i), d = (px - cx) ** 2 + (py - cy) ** 2;
      if (d < bestDistance) { best = i; bestDistance = d; }
    }
    if (best >= 0 && bestDistance < 100) select(best);
  });

  // Drawing z from the embedded samplers, each as it describes itself (betavae.samplers.Sampler.explorer): its name,
  // the labels it draws by (none: it has one mixture) and its mixtures, one per label in that order.
  const samplerSelect = document.getElementById("sampler"), digitSelect = document.getElementById("digit");
  const samplers = {};
  for (const sampler of spec.samplers || []) {
    samplers[sampler.name] = { labels: sampler.labels, mixtures: sampler.mixtures.map(D.prepareMixture) };
    samplerSelect.append(Object.assign(new Option(sampler.name, sampler.name), { title: sampler.help }));
  }
  function showLabels() {
    const labels = samplerSelect.value in samplers ? samplers[samplerSelect.value].labels : [];
    digitSelect.replaceChildren(...labels.map((label) => new Option("label " + label, label)));
    digitSelect.style.display = labels.length ? "" : "none";
  }
  samplerSelect.addEventListener("change", showLabels);
  showLabels();

  function drawZ(name, label, eps, u) {
    const sampler = samplers[name], byLabel = sampler.labels.length > 0;
    const index = byLabel ? sampler.labels.indexOf(String(label)) : 0;
    if (index < 0) throw new Error("the " + name + " sampler has no label " + label);
    eps = eps || D.normals(latentDim, Math.random);
    u = u === undefined ? Math.random() : u;
    const drawn = D.mixtureDraw(sampler.mixtures[index], eps, u);
    state.lastDraw = { sampler: name, label: byLabel ? String(label) : null, eps: Array.from(eps), u,
                       z: Array.from(drawn) };
    setLatent(drawn);
    return state.lastDraw;
  }
  document.getElementById("draw-z").addEventListener("click",
    () => drawZ(samplerSelect.value, digitSelect.value));

  window.explorer.setLatent = setLatent;
  window.explorer.select = select;
  window.explorer.drawZ = drawZ;

  for (const id of ["decoded", "original"]) {
    const canvas = document.getElementById(id);
    canvas.width = width;
    canvas.height = height;
  }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < nPoints; i++) {
    x0 = Math.min(x0, xy[2 * i]); x1 = Math.max(x1, xy[2 * i]);
    y0 = Math.min(y0, xy[2 * i + 1]); y1 = Math.max(y1, xy[2 * i + 1]);
  }
  bounds = [x0, x1, y0, y1];
  buildSliders();
  const legend = document.getElementById("legend");
  for (const label of [...new Set(spec.points.labels)].sort((a, b) => a - b)) {
    if (label < 0) continue;
    const item = document.createElement("span");
    item.innerHTML = '<i style="background:' + spec.palette[label % spec.palette.length] + '"></i>' + label;
    legend.append(item);
  }
  drawMap();
  if (nPoints > 0) select(0); else render();
  state.ready = true;
  state.readyMs = performance.now();
})();
