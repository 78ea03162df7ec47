// `js-scale`: a job plugin in JavaScript, built with componentize-qjs
// (QuickJS; the Bytecode Alliance's componentize-js ships it beside jco).
//
// The same job as examples/python: multiplies every number in each text
// file under /input by `params.factor` on the GPU (one compute dispatch per
// file through pictor:plugin/gpu) and writes the results, one per line, to
// the same name under /output. It reports progress after each file and
// saves a checkpoint listing the files done, so an interrupted job picks up
// where it stopped. Params: {"factor": 2.0} (optional, default 2).
//
// How the WIT maps to JavaScript here: kebab-case names are camelCase,
// records are objects, variants `{tag, val}`, flags objects of booleans,
// `u64` plain numbers, `list<u8>` a Uint8Array, resources objects with
// their methods. A thrown {tag, val} is the job's `job-error`; imported
// functions that return a `result` throw their error.

import { report, cancelled } from 'pictor:plugin/progress@0.2.0';
import { save, load } from 'pictor:plugin/checkpoint@0.2.0';
import {
  createBuffer, createShaderModule, createComputePipeline, createBindGroup, submit,
} from 'pictor:plugin/gpu@0.2.0';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { getStdout } from 'wasi:cli/stdout@0.2.12';

const SHADER = `
@group(0) @binding(0) var<storage, read_write> values: array<f32>;
override factor: f32 = 1.0;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&values) {
        values[id.x] = values[id.x] * factor;
    }
}
`;

const MAX_VALUES = 1 << 20;
const MAX_FILE_BYTES = 64 << 20;

// QuickJS has no TextEncoder/TextDecoder: UTF-8 by hand.
function utf8Encode(text) {
  const out = [];
  for (const ch of text) {
    const c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

function utf8Decode(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    const n = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0;
    if (n === 0 || i + n > bytes.length) { text += '\ufffd'; i += 1; continue; }
    let c = n === 1 ? b : b & (0xff >> (n + 1));
    for (let k = 1; k < n; k++) c = (c << 6) | (bytes[i + k] & 63);
    text += String.fromCodePoint(c);
    i += n;
  }
  return text;
}

// A line to the job's log (QuickJS has no console either).
const log = (line) => getStdout().blockingWriteAndFlush(utf8Encode(`${line}\n`));

const fail = (tag, val) => { throw val === undefined ? { tag } : { tag, val }; };
const why = (e) => (e && e.payload !== undefined ? JSON.stringify(e.payload) : String(e));

function preopen(name) {
  const found = getDirectories().find(([, path]) => path === name);
  if (!found) fail('io', `${name} is not preopened`);
  return found[0];
}

function listFiles(dir) {
  const names = [];
  const entries = dir.readDirectory();
  for (let entry = entries.readDirectoryEntry(); entry; entry = entries.readDirectoryEntry()) {
    if (entry.type === 'regular-file') names.push(entry.name);
  }
  return names.sort();
}

function readText(dir, name) {
  const path = `/input/${name}`;
  try {
    const file = dir.openAt({}, name, {}, { read: true });
    const size = Number(file.stat().size);
    if (size > MAX_FILE_BYTES) fail('invalid-input', `${path} is ${size} bytes, the most is ${MAX_FILE_BYTES}`);
    const parts = [];
    let offset = 0;
    for (;;) {
      const [chunk, end] = file.read(1 << 20, offset);
      parts.push(chunk);
      offset += chunk.length;
      if (end || chunk.length === 0) break;
    }
    const bytes = new Uint8Array(offset);
    let at = 0;
    for (const part of parts) { bytes.set(part, at); at += part.length; }
    return utf8Decode(bytes);
  } catch (e) {
    if (e && e.tag) throw e;
    fail('io', `reading ${path}: ${why(e)}`);
  }
}

function writeText(dir, name, text) {
  try {
    const file = dir.openAt({}, name, { create: true, truncate: true }, { write: true });
    const bytes = utf8Encode(text);
    let offset = 0;
    while (offset < bytes.length) {
      offset += Number(file.write(bytes.subarray(offset), offset));
    }
  } catch (e) {
    fail('io', `writing /output/${name}: ${why(e)}`);
  }
}

function parseNumbers(name, text) {
  const path = `/input/${name}`;
  const numbers = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (!line) return;
    const value = Number(line);
    if (Number.isNaN(value)) fail('invalid-input', `${path} line ${index + 1}: \`${line.slice(0, 40)}\` is not a number`);
    numbers.push(value);
  });
  if (numbers.length > MAX_VALUES) fail('invalid-input', `${path} has ${numbers.length} numbers, the most is ${MAX_VALUES}`);
  return numbers;
}

// One dispatch: numbers[i] * factor for every i.
function scaleOnGpu(numbers, factor) {
  if (numbers.length === 0) return [];
  const size = 4 * numbers.length;
  try {
    const buffer = createBuffer(size, { storage: true });
    buffer.write(0, new Uint8Array(Float32Array.from(numbers).buffer));
    const module = createShaderModule(SHADER);
    const pipeline = createComputePipeline(module, 'main', [{ name: 'factor', value: factor }]);
    const group = createBindGroup(pipeline, 0, [{ binding: 0, buffer, offset: 0, size: undefined }]);
    const x = Math.ceil(numbers.length / 64);
    submit([{ tag: 'dispatch', val: { pipeline, bindGroups: [group], x, y: 1, z: 1 } }]);
    const data = buffer.read(0, size);
    return Array.from(new Float32Array(data.buffer, data.byteOffset, numbers.length));
  } catch (e) {
    fail('failed', `GPU: ${why(e)}`);
  }
}

// Like Python's `{:g}` for the values this job writes.
const show = (v) => String(Number(v.toPrecision(6)));

export function run(job) {
  let params;
  try {
    params = JSON.parse(job.params || '{}');
  } catch (e) {
    fail('invalid-params', `params are not JSON: ${e.message}`);
  }
  if (typeof params !== 'object' || params === null || Array.isArray(params)
      || Object.keys(params).some((k) => k !== 'factor')) {
    fail('invalid-params', 'params may only have `factor`');
  }
  const factor = params.factor === undefined ? 2 : params.factor;
  if (typeof factor !== 'number') fail('invalid-params', '`factor` must be a number');

  const input = preopen('/input');
  const output = preopen('/output');
  const names = listFiles(input);
  const saved = load();
  const done = saved ? JSON.parse(utf8Decode(saved)) : { files: [], values: 0 };
  names.forEach((name, index) => {
    if (done.files.includes(name)) return;
    if (cancelled()) fail('cancelled');
    const scaled = scaleOnGpu(parseNumbers(name, readText(input, name)), factor);
    writeText(output, name, scaled.map((v) => `${show(v)}\n`).join(''));
    done.files.push(name);
    done.values += scaled.length;
    try {
      save(utf8Encode(JSON.stringify(done)));
    } catch (e) {
      log(`js-scale: checkpoint not saved: ${why(e)}`);
    }
    report((index + 1) / names.length, `scaled ${name}`);
  });
  log(`js-scale: ${names.length} files for job ${job.id}`);
  return {
    message: `scaled ${done.values} numbers in ${names.length} files by ${show(factor)}`,
    metrics: [{ name: 'files', value: names.length }, { name: 'values', value: done.values }],
  };
}
