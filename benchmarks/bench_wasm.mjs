// Node half of bench_wasm.py: node bench_wasm.mjs SPEC.json
// SPEC: {sparsec_js, warmup, repeats, models: [{name, onnx, spx, inputs: [file per model input, in order]}]}.
// Loads each model in sparsec's wasm runtime and in onnxruntime-web (wasm backend, 1 thread, SIMD), checks they agree,
// times them interleaved in this one process and prints {node, onnxruntime_web, models: [...]} as JSON.
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import * as ort from "onnxruntime-web";

const spec = JSON.parse(await readFile(process.argv[2], "utf8"));
const { load } = await import(pathToFileURL(spec.sparsec_js).href);
ort.env.wasm.numThreads = 1; // sparsec's runtime is single-threaded
ort.env.wasm.simd = true; // fixed-width SIMD128, as sparsec_rt.wasm is built with

const progress = (message) => console.error(`[bench] ${message}`);

async function benchModel({ name, onnx, spx, inputs }) {
  const ours = await load(await readFile(spx));
  const theirs = await ort.InferenceSession.create(await readFile(onnx), { executionProviders: ["wasm"] });
  const feeds = {}, ortFeeds = {};
  for (const [index, info] of ours.inputs.entries()) {
    const bytes = await readFile(inputs[index]);
    feeds[info.name] = new info.type(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    ortFeeds[info.name] = new ort.Tensor(info.dtype, feeds[info.name], info.shape);
  }
  const runs = { sparsec: async () => ours.run(feeds), ort: () => theirs.run(ortFeeds) };

  const [ourOutputs, theirOutputs] = [await runs.sparsec(), await runs.ort()];
  let maxRelError = 0;
  for (const { name: output } of ours.outputs) {
    const a = ourOutputs[output], b = theirOutputs[output].data;
    let diff = 0, scale = 1e-12;
    for (let i = 0; i < b.length; i++) {
      diff = Math.max(diff, Math.abs(Number(a[i]) - Number(b[i])));
      scale = Math.max(scale, Math.abs(Number(b[i])));
    }
    maxRelError = Math.max(maxRelError, diff / scale);
  }

  progress(`${name}: ${spec.warmup} warm-up + ${spec.repeats} interleaved runs each`);
  for (let i = 0; i < spec.warmup; i++) {
    await runs.sparsec();
    await runs.ort();
  }
  // Which engine runs first swaps every iteration, so neither always gets the caches the other just warmed.
  const samples = { sparsec: [], ort: [] };
  for (let i = 0; i < spec.repeats; i++) {
    for (const engine of i % 2 === 0 ? ["sparsec", "ort"] : ["ort", "sparsec"]) {
      const start = performance.now();
      await runs[engine]();
      samples[engine].push(performance.now() - start);
    }
  }
  ours.free();
  await theirs.release();
  return { model: name, sparsec_samples_ms: samples.sparsec, ort_samples_ms: samples.ort, max_rel_error: maxRelError };
}

const models = [];
for (const model of spec.models) models.push(await benchModel(model));
console.log(JSON.stringify({ node: process.version, onnxruntime_web: ort.env.versions.web, models }));
