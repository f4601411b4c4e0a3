/**
 * NumPy `.npy` v1.0 files: little-endian `<f4` (Float32Array) or `<f2` (Uint16Array holding IEEE
 * binary16 bits), C order. Enough for `--dump` and for reading the files back in tests; numpy's
 * `np.load` reads what this writes.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { CanopyError } from '@canopy/core';

export type NpyDtype = '<f4' | '<f2';

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: Float32Array | Uint16Array;
}

const MAGIC = '\x93NUMPY';

function header(dtype: NpyDtype, shape: number[]): Uint8Array {
  const shapeStr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  // Pad with spaces so magic (6) + version (2) + length (2) + dict + '\n' is a multiple of 64.
  const unpadded = 10 + dict.length + 1;
  dict += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const bytes = new Uint8Array(10 + dict.length);
  for (let i = 0; i < 6; i++) bytes[i] = MAGIC.charCodeAt(i);
  bytes[6] = 1;
  bytes[7] = 0;
  bytes[8] = dict.length & 0xff;
  bytes[9] = dict.length >> 8;
  for (let i = 0; i < dict.length; i++) bytes[10 + i] = dict.charCodeAt(i);
  return bytes;
}

/** Write an array; the element count must match the shape. Data is written as-is (little-endian hosts). */
export function writeNpy(path: string, data: Float32Array | Uint16Array, shape: number[], dtype?: NpyDtype): void {
  const dt: NpyDtype = dtype ?? (data instanceof Float32Array ? '<f4' : '<f2');
  if ((dt === '<f4') !== data instanceof Float32Array) {
    throw new CanopyError('npy-dtype', `writeNpy ${path}: dtype ${dt} does not match a ${data.constructor.name}`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new CanopyError('npy-shape', `writeNpy ${path}: shape [${shape}] holds ${count} values, data has ${data.length}`);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header(dt, shape));
    // Write in chunks: a single writeSync of a >2 GiB view is not allowed.
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const CHUNK = 1 << 28;
    for (let off = 0; off < bytes.length; off += CHUNK) writeSync(fd, bytes.subarray(off, Math.min(bytes.length, off + CHUNK)));
  } finally {
    closeSync(fd);
  }
}

/** Read a `.npy` file written by `writeNpy` (or numpy: `<f4`/`<f2`, C order, v1–v3 headers). */
export function readNpy(path: string): NpyArray {
  const buf = readFileSync(path);
  if (buf.toString('latin1', 0, 6) !== MAGIC) throw new CanopyError('npy-format', `${path}: not a .npy file (bad magic)`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const dict = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(dict)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(dict)?.[1];
  const shapeStr = /'shape':\s*\(([^)]*)\)/.exec(dict)?.[1];
  if (descr !== '<f4' && descr !== '<f2') throw new CanopyError('npy-format', `${path}: unsupported dtype ${descr}`);
  if (fortran !== 'False') throw new CanopyError('npy-format', `${path}: Fortran order is not supported`);
  if (shapeStr === undefined) throw new CanopyError('npy-format', `${path}: header has no shape`);
  const shape = shapeStr
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const offset = start + headerLen;
  const body = buf.subarray(offset);
  // Copy into an aligned buffer (the file's data offset is 64-aligned but Buffer pooling is not).
  const aligned = new Uint8Array(body.length);
  aligned.set(body);
  const data = descr === '<f4' ? new Float32Array(aligned.buffer) : new Uint16Array(aligned.buffer);
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new CanopyError('npy-format', `${path}: shape [${shape}] needs ${count} values, file has ${data.length}`);
  return { dtype: descr, shape, data };
}
