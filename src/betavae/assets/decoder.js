// The betavae decoder in plain JavaScript: the same layers as the torch model, read from the weights the report
// embeds, so that the browser can decode any latent vector without a server. Works in browsers and in Node.js.
(function (root) {
  "use strict";

  function fromBase64(text) {
    const binary = typeof atob === "function" ? atob(text) : Buffer.from(text, "base64").toString("binary");
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  // Weights arrive base64-encoded (little-endian float32); decode them once.
  function prepare(layers) {
    return layers.map((layer) => {
      const out = Object.assign({}, layer);
      if (typeof layer.weight === "string") out.weight = fromBase64(layer.weight);
      if (typeof layer.bias === "string") out.bias = fromBase64(layer.bias);
      return out;
    });
  }

  function linear(layer, x) {
    const n = layer.in, m = layer.out, w = layer.weight, y = new Float64Array(m);
    for (let o = 0; o < m; o++) {
      let sum = layer.bias[o];
      const row = o * n;
      for (let i = 0; i < n; i++) sum += w[row + i] * x[i];
      y[o] = sum;
    }
    return y;
  }

  function relu(x) {
    const y = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) y[i] = x[i] > 0 ? x[i] : 0;
    return y;
  }

  function silu(x) {  // x * sigmoid(x)
    const y = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) y[i] = x[i] / (1 + Math.exp(-x[i]));
    return y;
  }

  // torch.nn.ConvTranspose2d with weight (in, out, k, k): each input pixel scatters a k x k stencil.
  function convTranspose(layer, x, shape) {
    const [cin, h, w] = shape, cout = layer.out, k = layer.kernel, s = layer.stride, p = layer.padding;
    const oh = (h - 1) * s - 2 * p + k, ow = (w - 1) * s - 2 * p + k;
    const y = new Float64Array(cout * oh * ow);
    for (let co = 0; co < cout; co++) y.fill(layer.bias[co], co * oh * ow, (co + 1) * oh * ow);
    const wt = layer.weight;
    for (let ci = 0; ci < cin; ci++) {
      for (let iy = 0; iy < h; iy++) {
        for (let ix = 0; ix < w; ix++) {
          const v = x[(ci * h + iy) * w + ix];
          if (v === 0) continue;
          for (let co = 0; co < cout; co++) {
            const base = ((ci * cout + co) * k) * k;
            for (let ky = 0; ky < k; ky++) {
              const oy = iy * s - p + ky;
              if (oy < 0 || oy >= oh) continue;
              const rowOut = (co * oh + oy) * ow, rowW = base + ky * k;
              for (let kx = 0; kx < k; kx++) {
                const ox = ix * s - p + kx;
                if (ox >= 0 && ox < ow) y[rowOut + ox] += v * wt[rowW + kx];
              }
            }
          }
        }
      }
    }
    return [y, [cout, oh, ow]];
  }

  function crop(x, shape, height, width) {
    const [c, h, w] = shape, y = new Float64Array(c * height * width);
    for (let ch = 0; ch < c; ch++)
      for (let r = 0; r < height; r++)
        for (let col = 0; col < width; col++) y[(ch * height + r) * width + col] = x[(ch * h + r) * w + col];
    return [y, [c, height, width]];
  }

  // The continuous Bernoulli's mean for logit l: sigmoid(l) / tanh(l / 2) - 1 / l, by its series near l = 0.
  function continuousBernoulliMean(l) {
    if (Math.abs(l) < 0.1) return 0.5 + l / 12 - (l * l * l) / 720;
    return Math.min(1, Math.max(0, 0.5 + 0.5 / Math.tanh(l / 2) - 1 / l));
  }

  // The discretized logistic's mean over its 256 bins, 1 - (1/255) sum_k F((k - 1/2) / 255), k = 1..255.
  function logisticMean(mu, logScale) {
    const inverseScale = Math.exp(-Math.max(logScale, -7));
    let below = 0;
    for (let k = 1; k <= 255; k++) below += 1 / (1 + Math.exp(-((k - 0.5) / 255 - mu) * inverseScale));
    return 1 - below / 255;
  }

  // The mean image in [0, 1] of the decoder's outputs, as betavae/model/decoders.py defines it per likelihood: the
  // logistic's outputs hold the means first, then the log-scales.
  function meanImage(x, likelihood) {
    const n = likelihood === "logistic" ? x.length / 2 : x.length, y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (likelihood === "bernoulli" || likelihood === undefined) y[i] = 1 / (1 + Math.exp(-x[i]));
      else if (likelihood === "continuous-bernoulli") y[i] = continuousBernoulliMean(x[i]);
      else if (likelihood === "logistic") y[i] = logisticMean(x[i], x[n + i]);
      else if (likelihood === "gaussian" || likelihood === "gaussian-learned") y[i] = Math.min(1, Math.max(0, x[i]));
      else throw new Error("unknown likelihood " + likelihood);
    }
    return y;
  }

  // Decode one latent vector into the likelihood's mean image (Bernoulli: pixel probabilities), a Float64Array of
  // C*H*W values.
  function decode(layers, z, likelihood) {
    let x = Float64Array.from(z), shape = [x.length];
    for (const layer of layers) {
      if (layer.type === "linear") { x = linear(layer, x); shape = [x.length]; }
      else if (layer.type === "relu") x = relu(x);
      else if (layer.type === "silu") x = silu(x);
      else if (layer.type === "reshape") shape = layer.shape.slice();
      else if (layer.type === "conv_transpose") [x, shape] = convTranspose(layer, x, shape);
      else if (layer.type === "crop") [x, shape] = crop(x, shape, layer.height, layer.width);
      else throw new Error("unknown layer type " + layer.type);
    }
    return meanImage(x, likelihood);
  }

  // A Gaussian mixture as the report embeds it (weights, means and Cholesky factors of the covariances, base64).
  function prepareMixture(mixture) {
    return { weights: mixture.weights, dim: mixture.dim, means: fromBase64(mixture.means),
             scaleTril: fromBase64(mixture.scale_tril) };
  }

  // One draw from a mixture given standard normal noise eps (length dim) and a uniform u in [0, 1) that picks the
  // component by its cumulative weight: z = mean_k + L_k eps, exactly as betavae.samplers.Mixture.draw_with.
  function mixtureDraw(mixture, eps, u) {
    const d = mixture.dim, weights = mixture.weights;
    const total = weights.reduce((a, b) => a + b, 0);
    let k = 0, cumulative = weights[0];
    while (k < weights.length - 1 && u * total >= cumulative) cumulative += weights[++k];
    const z = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      let sum = mixture.means[k * d + i];
      for (let j = 0; j <= i; j++) sum += mixture.scaleTril[(k * d + i) * d + j] * eps[j];
      z[i] = sum;
    }
    return z;
  }

  // Standard normal noise by Box-Muller from a source of uniforms (Math.random in the page).
  function normals(n, random) {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - random())), t = 2 * Math.PI * random();
      out[i] = r * Math.cos(t);
      if (i + 1 < n) out[i + 1] = r * Math.sin(t);
    }
    return out;
  }

  const api = { prepare, decode, meanImage, fromBase64, prepareMixture, mixtureDraw, normals };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.BetaVAEDecoder = api;
})(typeof window !== "undefined" ? window : globalThis);
