// The browser demo: pick a class, steps, seed and backend (WebGPU when the page has it, else wasm), watch
// the sample denoise step by step, cancel at any time. Everything runs in this page; the weights come from
// ../models/ next to the bundle. `document.body.dataset.state` (loading, ready, running, done, cancelled,
// error) lets tests follow along.
import { doctor, formatDoctorReport, generate, listBackends, loadDefaultModel, toRGBA } from "../bundles/dic-sdk.browser.js";

const $ = (id) => document.getElementById(id);
const setState = (state, text) => {
  document.body.dataset.state = state;
  if (text !== undefined) $("status").textContent = text;
};

let controller = null;

async function init() {
  const backends = await listBackends();
  const names = backends.filter((b) => b.available).map((b) => b.name);
  const preferred = ["webgpu", "wasm", "js"].find((n) => names.includes(n));
  for (const b of backends) {
    const opt = new Option(b.available ? b.name : `${b.name} (unavailable: ${b.why})`, b.name, false, b.name === preferred);
    opt.disabled = !b.available;
    $("backend").add(opt);
  }
  const model = await loadDefaultModel(preferred);
  for (const [i, name] of (model.classNames ?? []).entries()) $("label").add(new Option(name, String(i), false, name === "Sneaker"));
  $("generate").disabled = false;
  setState("ready", `ready (${model.config.input_size}x${model.config.input_size}, ${model.classNames?.length ?? 0} classes)`);
  doctor().then((r) => ($("doctor").textContent = formatDoctorReport(r).join("\n")), (e) => ($("doctor").textContent = String(e)));
}

function drawPreview(x, range) {
  const [img] = toRGBA({ shape: [1, x.shape[1], x.shape[2], x.shape[3]], data: x.data.subarray(0, x.shape[1] * x.shape[2] * x.shape[3]) }, range);
  const canvas = $("preview");
  canvas.width = img.width;
  canvas.height = img.height;
  canvas.getContext("2d").putImageData(new ImageData(img.data, img.width, img.height), 0, 0);
}

async function run(event) {
  event.preventDefault();
  controller = new AbortController();
  $("generate").disabled = true;
  $("cancel").disabled = false;
  const backend = $("backend").value;
  setState("running", `loading the model on ${backend}…`);
  try {
    const model = await loadDefaultModel(backend);
    const range = model.pixelRange ?? [-1, 1];
    const t0 = performance.now();
    const r = await generate({
      model,
      label: Number($("label").value),
      steps: Number($("steps").value),
      seed: Number($("seed").value),
      signal: controller.signal,
      onProgress: async ({ step, totalSteps, x }) => {
        drawPreview(x, range);
        $("step").textContent = `step ${step + 1} / ${totalSteps}`;
        setState("running", `generating on ${model.backend.name}…`);
        await new Promise((r) => setTimeout(r, 0)); // let the page paint and the cancel button react
      },
    });
    const png = await r.images[0].toPNG();
    $("result").src = URL.createObjectURL(new Blob([png], { type: "image/png" }));
    await $("result").decode();
    setState("done", `${r.images[0].labelName}: ${r.sampler} ${r.steps} steps, seed ${r.seed}, ${(performance.now() - t0).toFixed(0)} ms on ${model.backend.name}`);
  } catch (e) {
    if (controller.signal.aborted) setState("cancelled", "cancelled");
    else setState("error", `error: ${e.message}`);
  } finally {
    controller = null;
    $("generate").disabled = false;
    $("cancel").disabled = true;
  }
}

$("controls").addEventListener("submit", run);
$("cancel").addEventListener("click", () => controller?.abort());
init().catch((e) => setState("error", `error: ${e.message}`));
