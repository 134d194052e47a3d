// Open a report in headless Chromium, drag the first slider with the mouse, and print what the page shows (the
// decoded canvas as RGB bytes, pixel by pixel).
// Usage: node --experimental-websocket browser_check.mjs REPORT.html  (CHROMIUM=/usr/bin/chromium by default)
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const report = resolve(process.argv[2]);
const profile = mkdtempSync(join(tmpdir(), "betavae-chromium-"));
const browser = spawn(process.env.CHROMIUM || "/usr/bin/chromium", [
  "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
  `--user-data-dir=${profile}`, "--window-size=1280,1000", "about:blank"], { stdio: "ignore" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const deadline = Date.now() + 30000;

function finish(code, message) {
  if (message) process.stderr.write(message + "\n");
  browser.kill("SIGKILL");
  try { rmSync(profile, { recursive: true, force: true }); } catch (e) { /* best effort */ }
  process.exit(code);
}
setTimeout(() => finish(2, "timed out"), 45000).unref();

let port;
while (!port) {
  const file = join(profile, "DevToolsActivePort");
  if (existsSync(file)) port = readFileSync(file, "utf8").split("\n")[0];
  else if (Date.now() > deadline) finish(2, "chromium did not start");
  else await sleep(100);
}
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const socket = new WebSocket(targets.find((t) => t.type === "page").webSocketDebuggerUrl);
await new Promise((r) => socket.addEventListener("open", r));
let nextId = 0;
const pending = new Map(), events = [];
socket.addEventListener("message", (m) => {
  const msg = JSON.parse(m.data);
  if (msg.id !== undefined && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
  else events.push(msg.method);
});
const send = (method, params = {}) => new Promise((r) => {
  const id = ++nextId;
  pending.set(id, r);
  socket.send(JSON.stringify({ id, method, params }));
});
const evaluate = async (expression) => {
  const reply = await send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
  if (reply.result.exceptionDetails) finish(3, "page error: " + JSON.stringify(reply.result.exceptionDetails));
  return reply.result.result.value;
};

await send("Page.enable");
const navigationStart = Date.now();
await send("Page.navigate", { url: "file://" + report });
while (!(await evaluate("!!(window.explorer && window.explorer.ready)"))) {
  if (Date.now() > deadline) finish(2, "the explorer never became ready");
  await sleep(20);
}
const loadMs = await evaluate("window.explorer.readyMs");
const canvas = "Array.from(document.getElementById('decoded').getContext('2d').getImageData(0, 0, " +
  "document.getElementById('decoded').width, document.getElementById('decoded').height).data.filter((_, i) => i % 4 !== 3))";
const before = await evaluate(canvas);
const decodesBefore = await evaluate("window.explorer.decodes");
const rect = await evaluate("(() => { const r = document.querySelector('#sliders input').getBoundingClientRect(); " +
  "return [r.left, r.top, r.width, r.height]; })()");
const x = rect[0] + rect[2] * 0.12, y = rect[1] + rect[3] / 2;
for (const type of ["mousePressed", "mouseReleased"]) {
  await send("Input.dispatchMouseEvent", { type, x, y, button: "left", clickCount: 1 });
}
await sleep(50);
const result = {
  load_ms: loadMs,
  wall_load_ms: Date.now() - navigationStart,
  decodes: (await evaluate("window.explorer.decodes")) - decodesBefore,
  decode_ms: await evaluate("window.explorer.lastMs"),
  slider_value: await evaluate("parseFloat(document.querySelector('#sliders input').value)"),
  slider_dim: await evaluate("parseInt(document.querySelector('#sliders input').dataset.dim)"),
  z: await evaluate("Array.from(window.explorer.z)"),
  probabilities: await evaluate("window.explorer.lastProbabilities"),
  before,
  after: await evaluate(canvas),
};
const draws = {}; // after the slider check: each sampler's button, one draw
for (const kind of await evaluate("Array.from(document.getElementById('sampler').options, (o) => o.value)")) {
  await evaluate(`(() => { const s = document.getElementById('sampler'); s.value = '${kind}'; ` +
    "s.dispatchEvent(new Event('change')); document.getElementById('draw-z').click(); })()");
  draws[kind] = await evaluate("Object.assign({}, window.explorer.lastDraw, " +
    "{ shown: Array.from(window.explorer.z), digits_shown: document.getElementById('digit').style.display !== 'none' })");
}
result.draws = draws;
process.stdout.write(JSON.stringify(result));
finish(0);
