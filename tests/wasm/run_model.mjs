// Test driver: node run_model.mjs SPARSEC_JS MODEL.spx OUT_DIR [INPUT.bin ...]
// Runs the model through sparsec.js on raw input files (model input order) and writes OUT_DIR/<i>.bin per output;
// prints {inputs, outputs} as JSON, or the error message on stderr with exit code 1.
import { readFile, writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";

const [sparsecJs, model, outDir, ...inputFiles] = process.argv.slice(2);
try {
  const { load } = await import(pathToFileURL(sparsecJs).href);
  const session = await load(await readFile(model));
  const feeds = {};
  for (const [index, info] of session.inputs.entries()) {
    const bytes = await readFile(inputFiles[index]);
    feeds[info.name] = new info.type(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }
  const results = session.run(feeds);
  for (const [index, info] of session.outputs.entries()) {
    const value = results[info.name];
    await writeFile(`${outDir}/${index}.bin`, new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  }
  const describe = ({ name, dtype, shape }) => ({ name, dtype, shape });
  console.log(JSON.stringify({ inputs: session.inputs.map(describe), outputs: session.outputs.map(describe) }));
  session.free();
} catch (error) {
  console.error(error.message);
  process.exit(1);
}
