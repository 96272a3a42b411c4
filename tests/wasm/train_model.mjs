// Test driver: node train_model.mjs SPARSEC_JS MODEL.spx STEPS OUT_PARAMS.bin INPUT.bin... LABELS.bin
// Trains STEPS steps on the same batch through sparsec.js loadTrainer; prints the losses as JSON and writes the
// param region after the last step; or the error message on stderr with exit code 1.
import { readFile, writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";

const [sparsecJs, model, steps, outParams, ...files] = process.argv.slice(2);
try {
  const { loadTrainer } = await import(pathToFileURL(sparsecJs).href);
  const trainer = await loadTrainer(await readFile(model));
  const inputs = trainer.session.inputs;
  const typed = async (info, path) => {
    const bytes = await readFile(path);
    return new info.type(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  };
  const feeds = {};
  for (const [index, info] of inputs.slice(0, -1).entries()) feeds[info.name] = await typed(info, files[index]);
  const labels = await typed(inputs.at(-1), files.at(-1));
  const losses = [];
  for (let step = 0; step < Number(steps); ++step) losses.push(trainer.step(feeds, labels));
  await writeFile(outParams, trainer.readParams());
  console.log(JSON.stringify({ losses, gradients: trainer.gradients().length }));
  trainer.free();
} catch (error) {
  console.error(error.message);
  process.exit(1);
}
