// Decode latent vectors with the report's decoder.js under Node.js: node decode.js spec.json -> JSON mean images.
const fs = require("fs");
const path = require("path");
const D = require(path.join(__dirname, "../../src/betavae/assets/decoder.js"));
const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const layers = D.prepare(spec.layers);
const out = spec.z.map((z) => Array.from(D.decode(layers, z, spec.likelihood)));
process.stdout.write(JSON.stringify(out));
