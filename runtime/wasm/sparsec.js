// sparsec.js: runs sparsec artifacts (.spx) with sparsec_rt.wasm, in Node >= 20 and in browsers.
//
//   import { load } from "./sparsec.js";
//   const session = await load("model.spx");          // URL, path-like URL string, ArrayBuffer or Uint8Array
//   session.inputs;   // [{name, dtype, shape}], likewise session.outputs
//   const out = session.run({ input: new Float32Array(3 * 224 * 224) });   // {name: TypedArray}
//   session.free();
//
// sparsec_rt.wasm is looked for next to this file; pass { wasm: urlOrBytes } to load() to override.

const TYPED_ARRAYS = {
  1: ["float32", Float32Array],
  2: ["int64", BigInt64Array],
  3: ["int32", Int32Array],
  4: ["uint8", Uint8Array],
  5: ["int8", Int8Array],
};
const TENSOR_INFO_BYTES = 20; // sparsec_tensor_info on wasm32: name, dtype, ndim, dims, nbytes (4 bytes each)
const WASI_EBADF = 8;
const WASI_ENOSYS = 52;

const isNode = typeof process !== "undefined" && process.versions != null && process.versions.node != null;

async function readBytes(source) {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  const url = source instanceof URL ? source : new URL(String(source), isNode ? `file://${process.cwd()}/` : location.href);
  if (url.protocol === "file:") {
    const { readFile } = await import("node:fs/promises"); // Node's fetch does not read files
    return new Uint8Array(await readFile(url));
  }
  const response = await fetch(url);
  if (!response.ok) throw new Error(`sparsec: cannot fetch ${url}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// The WASI calls wasi-libc links in; the runtime reads no files and prints nothing, so most are stubs.
function wasiImports(module, getMemory) {
  const implemented = {
    clock_time_get(_clock, _precision, resultPtr) {
      const nanoseconds = BigInt(Math.round(performance.now() * 1e6));
      new DataView(getMemory().buffer).setBigUint64(resultPtr, nanoseconds, true);
      return 0;
    },
    fd_prestat_get: () => WASI_EBADF, // no preopened directories
    proc_exit(code) {
      throw new Error(`sparsec: runtime exited with code ${code}`);
    },
  };
  const wasi = {};
  for (const { module: name, name: field } of WebAssembly.Module.imports(module)) {
    if (name === "wasi_snapshot_preview1") wasi[field] = implemented[field] || (() => WASI_ENOSYS);
  }
  return { wasi_snapshot_preview1: wasi };
}

async function instantiate(wasmSource) {
  const module = await WebAssembly.compile(await readBytes(wasmSource));
  let memory;
  const instance = await WebAssembly.instantiate(module, wasiImports(module, () => memory));
  memory = instance.exports.memory;
  instance.exports._initialize(); // WASI reactor: runs static constructors
  return instance.exports;
}

let defaultRuntime;

function runtimeNextToThisFile() {
  defaultRuntime ||= instantiate(new URL("./sparsec_rt.wasm", import.meta.url));
  return defaultRuntime;
}

class Session {
  constructor(rt, handle) {
    this.rt = rt;
    this.handle = handle;
    this.inputs = this.#describe(rt.sparsec_num_inputs(handle), rt.sparsec_input_info);
    this.outputs = this.#describe(rt.sparsec_num_outputs(handle), rt.sparsec_output_info);
    this.arenaBytes = Number(rt.sparsec_arena_bytes(handle));
    // One staging buffer per input, allocated now: run() allocates nothing in wasm memory.
    this.staging = this.inputs.map((info) => rt.malloc(Math.max(info.nbytes, 1)));
  }

  #describe(count, infoFunction) {
    const rt = this.rt;
    const infoPtr = rt.malloc(TENSOR_INFO_BYTES);
    try {
      return Array.from({ length: count }, (_, index) => {
        check(rt, infoFunction(this.handle, index, infoPtr));
        const view = new DataView(rt.memory.buffer);
        const [name, dtype, ndim, dims, nbytes] = [0, 4, 8, 12, 16].map((offset) => view.getUint32(infoPtr + offset, true));
        const shape = Array.from({ length: ndim }, (_, k) => Number(view.getBigInt64(dims + 8 * k, true)));
        return { name: cString(rt, name), dtype: TYPED_ARRAYS[dtype][0], shape, nbytes, type: TYPED_ARRAYS[dtype][1] };
      });
    } finally {
      rt.free(infoPtr);
    }
  }

  /** Runs the model: feeds maps every input name to a TypedArray of its dtype; returns {output name: TypedArray}. */
  run(feeds) {
    const rt = this.rt;
    if (this.handle === 0) throw new Error("sparsec: session was freed");
    this.#checkNames(feeds);
    this.inputs.forEach((info, index) => {
      const value = feeds[info.name];
      if (!(value instanceof info.type))
        throw new Error(`sparsec: input '${info.name}' needs a ${info.type.name} (${info.dtype} ${JSON.stringify(info.shape)}), ` +
                        `got ${value?.constructor?.name ?? typeof value}`);
      const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      if (bytes.length !== info.nbytes)
        throw new Error(`sparsec: input '${info.name}' takes ${info.nbytes} bytes, got ${bytes.length}`);
      new Uint8Array(rt.memory.buffer, this.staging[index], bytes.length).set(bytes);
      check(rt, rt.sparsec_set_input(this.handle, index, this.staging[index], bytes.length));
    });
    check(rt, rt.sparsec_run(this.handle));
    const results = {};
    const pointers = rt.malloc(8); // data pointer, nbytes
    try {
      this.outputs.forEach((info, index) => {
        check(rt, rt.sparsec_get_output(this.handle, index, pointers, pointers + 4));
        const view = new DataView(rt.memory.buffer);
        const data = view.getUint32(pointers, true), nbytes = view.getUint32(pointers + 4, true);
        const copy = rt.memory.buffer.slice(data, data + nbytes); // the arena is overwritten by the next run
        results[info.name] = new info.type(copy);
      });
    } finally {
      rt.free(pointers);
    }
    return results;
  }

  // The same check and message as the Python Session: every input by name, nothing else.
  #checkNames(feeds) {
    const expected = this.inputs.map((info) => info.name);
    if (feeds === null || typeof feeds !== "object" || Array.isArray(feeds) || ArrayBuffer.isView(feeds)) {
      const got = Array.isArray(feeds) ? "an array" : feeds === null ? "null" : feeds?.constructor?.name ?? typeof feeds;
      throw new Error(`sparsec: the inputs must be an object {input name: TypedArray}, got ${got}; ` +
                      `the model's inputs are ${JSON.stringify(expected)}`);
    }
    const unknown = Object.keys(feeds).filter((name) => !expected.includes(name)).sort();
    const missing = expected.filter((name) => !Object.hasOwn(feeds, name)).sort();
    if (unknown.length || missing.length)
      throw new Error(`sparsec: inputs do not match the artifact: unknown ${JSON.stringify(unknown)}, ` +
                      `missing ${JSON.stringify(missing)}; expected ${JSON.stringify([...expected].sort())}`);
  }

  /** Releases the session's memory inside the runtime. */
  free() {
    if (this.handle === 0) return;
    this.staging.forEach((ptr) => this.rt.free(ptr));
    this.rt.sparsec_free(this.handle);
    this.handle = 0;
  }
}

function cString(rt, ptr) {
  const bytes = new Uint8Array(rt.memory.buffer, ptr);
  return new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
}

function check(rt, status) {
  if (status !== 0) throw new Error(`sparsec: ${cString(rt, rt.sparsec_last_error())}`);
}

/** Loads an artifact (URL, file URL/path string, ArrayBuffer or Uint8Array) into a new Session. */
export async function load(source, { wasm } = {}) {
  const rt = await (wasm === undefined ? runtimeNextToThisFile() : instantiate(wasm));
  const bytes = await readBytes(source);
  const data = rt.malloc(Math.max(bytes.length, 1));
  const handlePtr = rt.malloc(4);
  try {
    new Uint8Array(rt.memory.buffer, data, bytes.length).set(bytes);
    check(rt, rt.sparsec_load(data, bytes.length, handlePtr));
    return new Session(rt, new DataView(rt.memory.buffer).getUint32(handlePtr, true));
  } finally {
    rt.free(data); // the runtime keeps its own copy
    rt.free(handlePtr);
  }
}

/** The target this runtime was built for ("wasm32"). */
export async function runtimeTarget() {
  const rt = await runtimeNextToThisFile();
  return cString(rt, rt.sparsec_runtime_target());
}
