/**
 * @module
 * kombu 5.2's pickle serializer (`pickle.dumps(value, protocol=4)`), written by hand because the
 * edge runtimes have no Python. `encodePickle` emits what CPython's C pickler emits for the
 * equivalent Python value, byte for byte, including the parts that are easy to get subtly wrong:
 * - the frame layout: 64 KiB frames, split at the start of an object, no header for a final frame
 *   under 4 bytes, str/bytes payloads of 64 KiB or more written outside any frame;
 * - batching: APPENDS/SETITEMS every 1000 items, a lone item as APPEND/SETITEM, and after a full
 *   batch of dict items one more (possibly empty) MARK…SETITEMS, as CPython does;
 * - the memo: every str, bytes and container is memoized; a container or Date met again by identity
 *   becomes a BINGET, and so do repeats of `''`, `b''`, single-byte bytes and one-character
 *   strings below U+0100, which CPython keeps as singletons.
 * A Date becomes an aware `datetime.datetime` with `tzinfo=datetime.timezone.utc`.
 *
 * `decodePickle` reads what Python sends back in results: plain data, bytes, tuples, sets (as
 * arrays) and datetimes. It never calls anything: any other class comes back as an inert
 * `{ module, name, args }` record (how a pickled exception result reads).
 */
import { CeleryError, SerializationError } from "../errors.js";
import { datetimeFields } from "../protocol/python-repr.js";
import { checkValue, isPythonInt, type CheckOptions } from "./check.js";
import { checkInputSize, resolveDecodeLimits, type DecodeLimits, type ResolvedDecodeLimits } from "./limits.js";
import { isPyTuple, PyTuple } from "./python-values.js";
import type { Serializer } from "./serializer.js";

export const PICKLE_RULES: CheckOptions = {
  format: "pickle",
  allowBytes: true,
  allowNonFinite: true,
  allowLoneSurrogates: true,
};

const OP = {
  MARK: 0x28,
  STOP: 0x2e,
  POP: 0x30,
  POP_MARK: 0x31,
  DUP: 0x32,
  FLOAT: 0x46,
  INT: 0x49,
  BININT: 0x4a,
  BININT1: 0x4b,
  LONG: 0x4c,
  BININT2: 0x4d,
  NONE: 0x4e,
  REDUCE: 0x52,
  STRING: 0x53,
  BINSTRING: 0x54,
  SHORT_BINSTRING: 0x55,
  UNICODE: 0x56,
  BINUNICODE: 0x58,
  APPEND: 0x61,
  GLOBAL: 0x63,
  DICT: 0x64,
  EMPTY_DICT: 0x7d,
  APPENDS: 0x65,
  GET: 0x67,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  LIST: 0x6c,
  EMPTY_LIST: 0x5d,
  PUT: 0x70,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  SETITEM: 0x73,
  TUPLE: 0x74,
  EMPTY_TUPLE: 0x29,
  SETITEMS: 0x75,
  BINFLOAT: 0x47,
  PROTO: 0x80,
  NEWOBJ: 0x81,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  LONG4: 0x8b,
  BINBYTES: 0x42,
  SHORT_BINBYTES: 0x43,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  BINBYTES8: 0x8e,
  EMPTY_SET: 0x8f,
  ADDITEMS: 0x90,
  FROZENSET: 0x91,
  STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94,
  FRAME: 0x95,
  BYTEARRAY8: 0x96,
} as const;

/** CPython's pickler constants (Modules/_pickle.c). */
const BATCH_SIZE = 1000;
const FRAME_SIZE_TARGET = 64 * 1024;
const FRAME_SIZE_MIN = 4;
const FRAME_HEADER_SIZE = 9;

// ---------------------------------------------------------------------------------------------
// Writer

class PickleWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private pos = 0;
  private framing = false;
  private frameStart = -1;
  private memoSize = 0;
  /** Containers, Dates and bytes by identity. */
  private readonly objectMemo = new Map<object, number>();
  /** Strings CPython keeps as singletons ('' and one char below U+0100), and global names. */
  private readonly valueMemo = new Map<string, number>();

  encode(value: unknown): Uint8Array {
    this.write([OP.PROTO, 4]);
    this.framing = true;
    this.save(value);
    this.write([OP.STOP]);
    this.commitFrame();
    return this.buf.slice(0, this.pos);
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Every write opens a frame when none is open, reserving room for its header. */
  private reserve(n: number): number {
    if (this.framing && this.frameStart === -1) {
      this.ensure(FRAME_HEADER_SIZE);
      this.frameStart = this.pos;
      this.pos += FRAME_HEADER_SIZE;
    }
    this.ensure(n);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  private write(bytes: ArrayLike<number>): void {
    const at = this.reserve(bytes.length); // may replace this.buf, so not inlined into the call
    this.buf.set(bytes, at);
  }

  private commitFrame(): void {
    if (this.frameStart === -1) return;
    const length = this.pos - this.frameStart - FRAME_HEADER_SIZE;
    if (length >= FRAME_SIZE_MIN) {
      this.buf[this.frameStart] = OP.FRAME;
      this.view.setBigUint64(this.frameStart + 1, BigInt(length), true);
    } else {
      this.buf.copyWithin(this.frameStart, this.frameStart + FRAME_HEADER_SIZE, this.pos);
      this.pos -= FRAME_HEADER_SIZE;
    }
    this.frameStart = -1;
  }

  /** CPython checks the frame size at the start of saving each object. */
  private boundary(): void {
    if (this.frameStart !== -1 && this.pos - this.frameStart - FRAME_HEADER_SIZE >= FRAME_SIZE_TARGET) this.commitFrame();
  }

  /** Large payloads bypass framing: the open frame is committed and the data written bare. */
  private writePayload(header: number[], data: Uint8Array): void {
    const bypass = data.length >= FRAME_SIZE_TARGET;
    if (bypass) {
      this.commitFrame();
      this.framing = false;
    }
    this.write(header);
    this.write(data);
    this.framing = true;
  }

  /** MEMOIZE; `key` is how the object can be met again (none for objects that never recur). */
  private memoize(key?: object | string): void {
    if (typeof key === "string") this.valueMemo.set(key, this.memoSize);
    else if (key !== undefined) this.objectMemo.set(key, this.memoSize);
    this.memoSize++;
    this.write([OP.MEMOIZE]);
  }

  private memoGet(index: number): void {
    if (index < 256) this.write([OP.BINGET, index]);
    else this.write([OP.LONG_BINGET, ...u32le(index)]);
  }

  private save(value: unknown): void {
    this.boundary();
    switch (typeof value) {
      case "boolean":
        this.write([value ? OP.NEWTRUE : OP.NEWFALSE]);
        return;
      case "number":
        if (isPythonInt(value)) this.saveInt(value);
        else this.saveFloat(value);
        return;
      case "bigint":
        this.saveInt(Number(value));
        return;
      case "string":
        this.saveStr(value);
        return;
    }
    if (value === null) {
      this.write([OP.NONE]);
      return;
    }
    const obj = value as object;
    const seen = this.objectMemo.get(obj);
    if (seen !== undefined) {
      this.memoGet(seen);
      return;
    }
    if (obj instanceof Uint8Array) this.saveBytes(obj);
    else if (obj instanceof Date) this.saveDatetime(obj);
    else if (isPyTuple(obj)) this.saveTuple(obj);
    else if (Array.isArray(obj)) this.saveList(obj);
    else this.saveDict(obj as Record<string, unknown>);
  }

  private saveInt(n: number): void {
    if (n >= 0 && n <= 0xff) this.write([OP.BININT1, n]);
    else if (n >= 0 && n <= 0xffff) this.write([OP.BININT2, n & 0xff, n >>> 8]);
    else if (n >= -0x80000000 && n <= 0x7fffffff) this.write([OP.BININT, ...u32le(n >>> 0)]);
    else {
      const bytes = longBytes(BigInt(n));
      this.write([OP.LONG1, bytes.length, ...bytes]);
    }
  }

  private saveFloat(x: number): void {
    const at = this.reserve(9);
    this.buf[at] = OP.BINFLOAT;
    this.view.setFloat64(at + 1, x, false);
  }

  private saveStr(text: string): void {
    const singleton = isSingletonStr(text) ? `s:${text}` : null;
    if (singleton !== null) {
      const seen = this.valueMemo.get(singleton);
      if (seen !== undefined) {
        this.memoGet(seen);
        return;
      }
    }
    this.writeStr(text);
    this.memoize(singleton ?? undefined);
  }

  private writeStr(text: string): void {
    const data = encodeUtf8Surrogatepass(text);
    if (data.length < 256) this.writePayload([OP.SHORT_BINUNICODE, data.length], data);
    else if (data.length <= 0xffffffff) this.writePayload([OP.BINUNICODE, ...u32le(data.length)], data);
    else this.writePayload([OP.BINUNICODE8, ...u64le(data.length)], data);
  }

  private saveBytes(bytes: Uint8Array): void {
    // b'' and one-byte bytes are singletons in CPython, so equal ones share a memo entry.
    const singleton = bytes.length <= 1 ? `b:${bytes.length === 0 ? "" : bytes[0]}` : null;
    if (singleton !== null) {
      const seen = this.valueMemo.get(singleton);
      if (seen !== undefined) {
        this.memoGet(seen);
        return;
      }
    }
    if (bytes.length < 256) this.writePayload([OP.SHORT_BINBYTES, bytes.length], bytes);
    else if (bytes.length <= 0xffffffff) this.writePayload([OP.BINBYTES, ...u32le(bytes.length)], bytes);
    else this.writePayload([OP.BINBYTES8, ...u64le(bytes.length)], bytes);
    if (singleton !== null) {
      this.memoize(singleton);
      // The same Uint8Array met again is the same Python object too.
      this.objectMemo.set(bytes, this.memoSize - 1);
    } else {
      this.memoize(bytes);
    }
  }

  private saveTuple(items: readonly unknown[]): void {
    if (items.length === 0) {
      this.write([OP.EMPTY_TUPLE]);
      return;
    }
    if (items.length <= 3) {
      for (const item of items) this.save(item);
      this.write([OP.TUPLE1 + items.length - 1]);
    } else {
      this.write([OP.MARK]);
      for (const item of items) this.save(item);
      this.write([OP.TUPLE]);
    }
    this.memoize(items);
  }

  private saveList(items: readonly unknown[]): void {
    this.write([OP.EMPTY_LIST]);
    this.memoize(items);
    if (items.length === 1) {
      this.save(items[0]);
      this.write([OP.APPEND]);
      return;
    }
    for (let start = 0; start < items.length; start += BATCH_SIZE) {
      this.write([OP.MARK]);
      const end = Math.min(start + BATCH_SIZE, items.length);
      for (let i = start; i < end; i++) this.save(items[i]);
      this.write([OP.APPENDS]);
    }
  }

  private saveDict(record: Record<string, unknown>): void {
    this.write([OP.EMPTY_DICT]);
    this.memoize(record);
    const keys = Object.keys(record);
    if (keys.length === 0) return;
    if (keys.length === 1) {
      this.save(keys[0]);
      this.save(record[keys[0]!]);
      this.write([OP.SETITEM]);
      return;
    }
    // CPython loops while the last batch was full, so 1000 items end with an empty MARK SETITEMS.
    let start = 0;
    let batch: number;
    do {
      this.write([OP.MARK]);
      batch = Math.min(BATCH_SIZE, keys.length - start);
      for (let i = start; i < start + batch; i++) {
        this.save(keys[i]);
        this.save(record[keys[i]!]);
      }
      this.write([OP.SETITEMS]);
      start += batch;
    } while (batch === BATCH_SIZE);
  }

  /** `datetime.__reduce_ex__(4)`: `(datetime, (state_bytes, timezone.utc))`, utc itself reduced. */
  private saveDatetime(date: Date): void {
    this.saveGlobal("datetime", "datetime");
    // The args tuple (state, tz): save its items, TUPLE2, memoize it (a fresh tuple each time).
    this.boundary(); // save(args tuple)
    this.boundary(); // save(state bytes)
    this.writeStateBytes(date);
    this.saveUtc();
    this.write([OP.TUPLE2]);
    this.memoize();
    this.write([OP.REDUCE]);
    this.memoize(date);
  }

  private writeStateBytes(date: Date): void {
    const f = datetimeFields(date);
    const us = f.microsecond;
    const state = [f.year >> 8, f.year & 0xff, f.month, f.day, f.hour, f.minute, f.second, us >> 16, (us >> 8) & 0xff, us & 0xff];
    this.write([OP.SHORT_BINBYTES, state.length, ...state]);
    this.memoize();
  }

  /** `timezone.utc` reduces to `timezone(timedelta(0))`; one object, so memoized once. */
  private saveUtc(): void {
    this.boundary();
    const seen = this.valueMemo.get("obj:utc");
    if (seen !== undefined) {
      this.memoGet(seen);
      return;
    }
    this.saveGlobal("datetime", "timezone");
    this.boundary(); // args tuple (timedelta(0),)
    this.boundary(); // timedelta(0)
    this.saveGlobal("datetime", "timedelta");
    this.boundary(); // args tuple (0, 0, 0)
    for (let i = 0; i < 3; i++) this.save(0);
    this.write([OP.TUPLE3]);
    this.memoize();
    this.write([OP.REDUCE]);
    this.memoize();
    this.write([OP.TUPLE1]);
    this.memoize();
    this.write([OP.REDUCE]);
    this.memoize("obj:utc");
  }

  /** Protocol 4 globals: module and qualified name as memoized strings, then STACK_GLOBAL. */
  private saveGlobal(module: string, name: string): void {
    this.boundary();
    const key = `global:${module}.${name}`;
    const seen = this.valueMemo.get(key);
    if (seen !== undefined) {
      this.memoGet(seen);
      return;
    }
    // The module name is one interned string wherever it is used; the class name is its own.
    this.boundary();
    const moduleKey = `module:${module}`;
    const moduleSeen = this.valueMemo.get(moduleKey);
    if (moduleSeen !== undefined) this.memoGet(moduleSeen);
    else {
      this.writeStr(module);
      this.memoize(moduleKey);
    }
    this.boundary();
    this.writeStr(name);
    this.memoize();
    this.write([OP.STACK_GLOBAL]);
    this.memoize(key);
  }
}

function isSingletonStr(text: string): boolean {
  return text.length === 0 || (text.length === 1 && text.charCodeAt(0) < 0x100);
}

function u32le(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

function u64le(n: number): number[] {
  const low = n % 0x100000000;
  return [...u32le(low), ...u32le(Math.floor(n / 0x100000000))];
}

/** CPython's encode_long: little-endian two's complement, one redundant 0xff trimmed for negatives. */
function longBytes(n: bigint): number[] {
  const abs = n < 0n ? -n : n;
  const nbytes = (abs.toString(2).length >> 3) + 1;
  let v = n < 0n ? (1n << BigInt(8 * nbytes)) + n : n;
  const out: number[] = [];
  for (let i = 0; i < nbytes; i++) {
    out.push(Number(v & 0xffn));
    v >>= 8n;
  }
  if (n < 0n && out.length > 1 && out[out.length - 1] === 0xff && (out[out.length - 2]! & 0x80) !== 0) out.pop();
  return out;
}

const utf8Encoder = new TextEncoder();

/** UTF-8, except that unpaired surrogates get their 3-byte form, as Python's "surrogatepass". */
function encodeUtf8Surrogatepass(text: string): Uint8Array {
  if (!/[\uD800-\uDFFF]/.test(text)) return utf8Encoder.encode(text);
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return new Uint8Array(out);
}

/** `pickle.dumps(value, protocol=4)` for a value that passes `checkValue(value, PICKLE_RULES)`. */
export function encodePickle(value: unknown): Uint8Array {
  return new PickleWriter().encode(value);
}

// ---------------------------------------------------------------------------------------------
// Reader

/** A `module.name` the pickle refers to; only a few are ever called. */
class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
}

/** A `datetime.timezone`; only meaningful as a datetime's tzinfo. */
class PyTimezone {
  constructor(readonly offsetSeconds: number) {}
}

/** A `datetime.timedelta`; becomes its total seconds unless it is a timezone's offset. */
class PyTimedelta {
  constructor(readonly seconds: number) {}
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Python's `sys.int_info.default_max_str_digits`: longer decimal ints are refused, as Python refuses them. */
const MAX_INT_DIGITS = 4300;
/** LONG4 payloads beyond this are refused; 4 300 decimal digits take 1 786 bytes. */
const MAX_LONG_BYTES = 2048;
/** Work every pickle may do whatever its size, so tiny pickles are not refused for their fixed cost. */
const BASE_WORK = 4096;

/**
 * Steps per opcode beyond the one every opcode costs, so that a step stands for about 8 bytes of
 * heap: opcodes that make an object (a list, dict, tuple, mark, global, a REDUCE result) cost 4
 * more, memo entries 2. Elements moved into containers and bytes copied are charged where they move.
 */
const OPCODE_COST = (() => {
  const cost = new Uint8Array(256);
  const objects = [
    OP.MARK, OP.EMPTY_LIST, OP.EMPTY_DICT, OP.EMPTY_TUPLE, OP.EMPTY_SET, OP.LIST, OP.DICT, OP.TUPLE, OP.TUPLE1, OP.TUPLE2,
    OP.TUPLE3, OP.FROZENSET, OP.GLOBAL, OP.STACK_GLOBAL, OP.REDUCE, OP.NEWOBJ,
  ];
  for (const op of objects) cost[op] = 4;
  for (const op of [OP.MEMOIZE, OP.PUT, OP.BINPUT, OP.LONG_BINPUT]) cost[op] = 2;
  return cost;
})();

class PickleReader {
  private pos = 0;
  private readonly view: DataView;
  private stack: unknown[] = [];
  private readonly marks: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  /** Steps left: one per opcode, plus one per element or byte a step copies (see `DecodeLimits`). */
  private work: number;
  /** Set once a global is met; only then can timedeltas or stray classes need a final pass. */
  usedGlobals = false;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly limits: ResolvedDecodeLimits,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.work = Math.min(BASE_WORK + limits.pickleWorkPerByte * bytes.length, limits.pickleMaxWork);
  }

  fail(message: string): never {
    throw new SerializationError(`cannot decode pickle at byte ${this.pos}: ${message}`, "body");
  }

  /** Charges `n` steps; a pickle that needs more than its size allows is refused (e.g. copying one list over and over). */
  private spend(n: number): void {
    this.work -= n;
    if (this.work < 0) {
      this.fail(
        `it needs more decoding steps than ${this.limits.pickleWorkPerByte} per byte (pickleWorkPerByte) or ${this.limits.pickleMaxWork} in all ` +
          `(pickleMaxWork): refused as a resource-exhaustion attempt`,
      );
    }
  }

  private take(n: number): Uint8Array {
    // A negative length would move the reader backwards: a loop that never ends.
    if (!Number.isSafeInteger(n) || n < 0) this.fail(`invalid length ${n}`);
    if (n > this.bytes.length - this.pos) this.fail(`a length of ${n} bytes runs past the end of the data`);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private u8(): number {
    return this.take(1)[0]!;
  }
  private u16(): number {
    const at = this.pos;
    this.take(2);
    return this.view.getUint16(at, true);
  }
  private u32(): number {
    const at = this.pos;
    this.take(4);
    return this.view.getUint32(at, true);
  }
  private i32(): number {
    const at = this.pos;
    this.take(4);
    return this.view.getInt32(at, true);
  }
  private u64(): number {
    const at = this.pos;
    this.take(8);
    const n = this.view.getBigUint64(at, true);
    if (n > MAX_SAFE) this.fail("length too large");
    return Number(n);
  }
  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) this.fail("missing newline");
    this.spend(end - this.pos);
    // Byte-for-character (Latin-1); TextDecoder("latin1") would be windows-1252.
    let text = "";
    for (let i = this.pos; i < end; i++) text += String.fromCharCode(this.bytes[i]!);
    this.pos = end + 1;
    return text;
  }
  /** A memo index or an int written as text (protocol 0). */
  private decimalLine(): number {
    const text = this.line();
    if (!/^\d{1,15}$/.test(text)) this.fail(`not a memo index: ${JSON.stringify(text.slice(0, 20))}`);
    return Number(text);
  }

  private pop(): unknown {
    if (this.stack.length === 0) this.fail("stack underflow");
    return this.stack.pop();
  }
  private top(): unknown {
    if (this.stack.length === 0) this.fail("stack underflow");
    return this.stack[this.stack.length - 1];
  }
  private popMark(): unknown[] {
    const items = this.stack;
    const previous = this.marks.pop();
    if (!previous) this.fail("MARK missing");
    this.stack = previous;
    this.spend(items.length);
    return items;
  }

  /** Pops back to the last MARK and pushes what `build` makes of the items above it. */
  private pushAfterMark(build: (items: unknown[]) => unknown): void {
    // Not `this.stack.push(...)`: popMark replaces this.stack, and the receiver is read first.
    const value = build(this.popMark());
    this.stack.push(value);
  }

  private text(bytes: Uint8Array): string {
    this.spend(bytes.length);
    return decodeUtf8Surrogatepass(bytes);
  }

  private copyBytes(bytes: Uint8Array): Uint8Array {
    this.spend(bytes.length);
    // new Uint8Array(view) copies, and gives a plain Uint8Array even when the input is a Buffer.
    return new Uint8Array(bytes);
  }

  private long(length: number): number | bigint {
    if (length < 0) this.fail(`negative LONG4 length ${length}`);
    if (length > MAX_LONG_BYTES) this.fail(`an int of ${length} bytes is over the ${MAX_LONG_BYTES}-byte limit`);
    const bytes = this.take(length);
    this.spend(length);
    return intFromLong(bytes);
  }

  private intText(text: string): number | bigint {
    const digits = /^[-+]?(\d+)$/.exec(text);
    if (!digits) this.fail(`not an int: ${JSON.stringify(text.slice(0, 20))}`);
    if (digits[1]!.length > MAX_INT_DIGITS) this.fail(`an int of more than ${MAX_INT_DIGITS} digits`);
    const n = BigInt(text);
    return n <= MAX_SAFE && n >= -MAX_SAFE ? Number(n) : n;
  }

  private floatText(text: string): number {
    const t = text.trim().toLowerCase();
    if (t === "inf" || t === "+inf" || t === "infinity") return Infinity;
    if (t === "-inf" || t === "-infinity") return -Infinity;
    if (t === "nan" || t === "+nan" || t === "-nan") return NaN;
    if (!/^[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?$/.test(t)) this.fail(`not a float: ${JSON.stringify(text.slice(0, 20))}`);
    return Number(t);
  }

  read(): unknown {
    for (;;) {
      const op = this.u8();
      this.spend(1 + OPCODE_COST[op]!);
      switch (op) {
        case OP.PROTO:
          this.u8();
          break;
        case OP.FRAME:
          this.u64();
          break;
        case OP.STOP:
          return this.pop();
        case OP.MARK:
          this.marks.push(this.stack);
          this.stack = [];
          break;
        case OP.POP:
          if (this.stack.length === 0) this.popMark();
          else this.pop();
          break;
        case OP.POP_MARK:
          this.popMark();
          break;
        case OP.DUP:
          this.stack.push(this.top());
          break;
        case OP.NONE:
          this.stack.push(null);
          break;
        case OP.NEWTRUE:
          this.stack.push(true);
          break;
        case OP.NEWFALSE:
          this.stack.push(false);
          break;
        case OP.BININT1:
          this.stack.push(this.u8());
          break;
        case OP.BININT2:
          this.stack.push(this.u16());
          break;
        case OP.BININT:
          this.stack.push(this.i32());
          break;
        case OP.LONG1:
          this.stack.push(this.long(this.u8()));
          break;
        case OP.LONG4:
          this.stack.push(this.long(this.i32()));
          break;
        case OP.INT: {
          const text = this.line();
          this.stack.push(text === "01" ? true : text === "00" ? false : this.intText(text));
          break;
        }
        case OP.LONG:
          this.stack.push(this.intText(this.line().replace(/L$/, "")));
          break;
        case OP.BINFLOAT: {
          const at = this.pos;
          this.take(8);
          this.stack.push(this.view.getFloat64(at, false));
          break;
        }
        case OP.FLOAT:
          this.stack.push(this.floatText(this.line()));
          break;
        case OP.SHORT_BINUNICODE:
          this.stack.push(this.text(this.take(this.u8())));
          break;
        case OP.BINUNICODE:
          this.stack.push(this.text(this.take(this.u32())));
          break;
        case OP.BINUNICODE8:
          this.stack.push(this.text(this.take(this.u64())));
          break;
        case OP.UNICODE:
          this.stack.push(unescapeRawUnicode(this.line(), (m) => this.fail(m)));
          break;
        case OP.SHORT_BINBYTES:
          this.stack.push(this.copyBytes(this.take(this.u8())));
          break;
        case OP.BINBYTES:
          this.stack.push(this.copyBytes(this.take(this.u32())));
          break;
        case OP.BINBYTES8:
        case OP.BYTEARRAY8:
          this.stack.push(this.copyBytes(this.take(this.u64())));
          break;
        case OP.EMPTY_LIST:
          this.stack.push([]);
          break;
        case OP.LIST:
          this.pushAfterMark((items) => items);
          break;
        case OP.APPEND: {
          const item = this.pop();
          this.listTop().push(item);
          break;
        }
        case OP.APPENDS: {
          const items = this.popMark();
          const list = this.listTop();
          for (const item of items) list.push(item);
          break;
        }
        case OP.EMPTY_DICT:
          this.stack.push({});
          break;
        case OP.DICT: {
          const dict = {};
          this.setItems(dict, this.popMark());
          this.stack.push(dict);
          break;
        }
        case OP.SETITEM: {
          const value = this.pop();
          const key = this.pop();
          this.setItems(this.dictTop(), [key, value]);
          break;
        }
        case OP.SETITEMS: {
          const items = this.popMark();
          this.setItems(this.dictTop(), items);
          break;
        }
        case OP.EMPTY_TUPLE:
          this.stack.push(new PyTuple());
          break;
        case OP.TUPLE:
          this.pushAfterMark(toTuple);
          break;
        case OP.TUPLE1:
        case OP.TUPLE2:
        case OP.TUPLE3: {
          const n = op - OP.TUPLE1 + 1;
          if (this.stack.length < n) this.fail("stack underflow");
          this.stack.push(toTuple(this.stack.splice(this.stack.length - n, n)));
          break;
        }
        case OP.EMPTY_SET:
          this.stack.push([]);
          break;
        case OP.ADDITEMS: {
          const items = this.popMark();
          const set = this.listTop();
          for (const item of items) set.push(item);
          break;
        }
        case OP.FROZENSET:
          this.pushAfterMark((items) => items);
          break;
        case OP.MEMOIZE:
          this.memo.set(this.memo.size, this.top());
          break;
        case OP.PUT:
          this.memo.set(this.decimalLine(), this.top());
          break;
        case OP.BINPUT:
          this.memo.set(this.u8(), this.top());
          break;
        case OP.LONG_BINPUT:
          this.memo.set(this.u32(), this.top());
          break;
        case OP.GET:
          this.pushMemo(this.decimalLine());
          break;
        case OP.BINGET:
          this.pushMemo(this.u8());
          break;
        case OP.LONG_BINGET:
          this.pushMemo(this.u32());
          break;
        case OP.GLOBAL: {
          const module = this.line();
          this.usedGlobals = true;
          this.stack.push(new PyGlobal(module, this.line()));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== "string" || typeof name !== "string") this.fail("STACK_GLOBAL needs two strings");
          this.usedGlobals = true;
          this.stack.push(new PyGlobal(module, name));
          break;
        }
        case OP.REDUCE: {
          const args = this.pop();
          const callable = this.pop();
          this.stack.push(this.call(callable, args));
          break;
        }
        default:
          this.pos--;
          this.fail(`opcode 0x${op.toString(16).padStart(2, "0")} is not supported`);
      }
    }
  }

  private pushMemo(index: number): void {
    if (!this.memo.has(index)) this.fail(`memo ${index} is missing`);
    this.stack.push(this.memo.get(index));
  }

  private listTop(): unknown[] {
    const list = this.top();
    if (!Array.isArray(list)) this.fail("APPEND target is not a list");
    return list;
  }

  private dictTop(): Record<string, unknown> {
    const dict = this.top();
    if (typeof dict !== "object" || dict === null || Array.isArray(dict) || dict instanceof Uint8Array) this.fail("SETITEM target is not a dict");
    // Dates, globals and the inert records of unknown classes are not dicts; the records are frozen.
    if (Object.getPrototypeOf(dict) !== Object.prototype || Object.isFrozen(dict)) this.fail("SETITEM target is not a dict");
    return dict as Record<string, unknown>;
  }

  private setItems(dict: Record<string, unknown>, items: unknown[]): void {
    for (let i = 0; i + 1 < items.length; i += 2) {
      const key = this.dictKey(items[i]);
      // defineProperty: a "__proto__" key stays an ordinary key instead of replacing the prototype.
      if (key === "__proto__") Object.defineProperty(dict, key, { value: items[i + 1], enumerable: true, writable: true, configurable: true });
      else dict[key] = items[i + 1];
    }
  }

  /** JavaScript keys are strings: ints, floats, bools and None become what JSON would make them. */
  private dictKey(key: unknown): string {
    if (typeof key === "string") return key;
    if (typeof key === "number" || typeof key === "bigint") return String(key);
    if (typeof key === "boolean") return key ? "true" : "false";
    if (key === null) return "null";
    this.fail("dict keys must be str, int, float, bool or None");
  }

  /** The few callables a result may contain; anything else becomes an inert record, never looked up. */
  private call(callable: unknown, args: unknown): unknown {
    if (!(callable instanceof PyGlobal) || !Array.isArray(args)) this.fail("REDUCE needs a global and a tuple");
    const a = args as unknown[];
    switch (`${callable.module}.${callable.name}`) {
      case "datetime.datetime":
        return datetimeFromArgs(a, (m) => this.fail(m));
      case "datetime.date": {
        const state = a[0];
        if (!(state instanceof Uint8Array) || state.length !== 4) this.fail("unsupported date state");
        return new Date(Date.UTC((state[0]! << 8) | state[1]!, state[2]! - 1, state[3]!));
      }
      case "datetime.timedelta": {
        const [days = 0, seconds = 0, micros = 0] = a;
        if (typeof days !== "number" || typeof seconds !== "number" || typeof micros !== "number") this.fail("timedelta needs numbers");
        return new PyTimedelta(days * 86400 + seconds + micros / 1e6);
      }
      case "datetime.timezone": {
        const offset = a[0];
        if (!(offset instanceof PyTimedelta)) this.fail("timezone needs a timedelta");
        return new PyTimezone(offset.seconds);
      }
      case "_codecs.encode": {
        // Protocols 2/3 write bytes as _codecs.encode(text, "latin1").
        const [text, encoding] = a;
        if (typeof text !== "string" || encoding !== "latin1") this.fail("unsupported _codecs.encode call");
        this.spend(text.length);
        return Uint8Array.from(text, (ch) => ch.charCodeAt(0));
      }
      // Protocols 2 and below name the builtins module "__builtin__", as Python 2 did.
      case "builtins.set":
      case "builtins.frozenset":
      case "builtins.list":
      case "__builtin__.set":
      case "__builtin__.frozenset":
      case "__builtin__.list": {
        // A copy, as Python makes one; charged per element, so one list copied again and again is refused.
        const items = Array.isArray(a[0]) ? (a[0] as unknown[]) : [];
        this.spend(items.length);
        return [...items];
      }
      case "builtins.bytearray":
      case "__builtin__.bytearray":
        return a[0] instanceof Uint8Array ? a[0] : new Uint8Array();
      default:
        // Nothing is ever looked up or run: an object we do not know (a pickled exception, in
        // practice: Celery stores failures that way under result_serializer=pickle) stays an inert
        // record of what it names.
        this.spend(a.length);
        return Object.freeze({ module: callable.module, name: callable.name, args: toTuple(a) });
    }
  }
}

function toTuple(items: unknown[]): PyTuple {
  return PyTuple.fromArray(items);
}

/** Little-endian two's complement, in one BigInt parse (a shift per byte would be quadratic). */
function intFromLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let hexDigits = "";
  for (let i = bytes.length - 1; i >= 0; i--) hexDigits += bytes[i]!.toString(16).padStart(2, "0");
  let n = BigInt(`0x${hexDigits}`);
  if (bytes[bytes.length - 1]! & 0x80) n -= 1n << BigInt(8 * bytes.length);
  return n <= MAX_SAFE && n >= -MAX_SAFE ? Number(n) : n;
}

/** Protocol 0 UNICODE lines use raw-unicode-escape: only \uXXXX and \UXXXXXXXX are escapes. */
function unescapeRawUnicode(text: string, fail: (message: string) => never): string {
  return text.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, u: string | undefined, U: string | undefined) => {
    const cp = parseInt((u ?? U)!, 16);
    if (cp > 0x10ffff) fail(`\\U${U} is not a code point`);
    return String.fromCodePoint(cp);
  });
}

function datetimeFromArgs(args: unknown[], fail: (message: string) => never): Date {
  const [state, tz] = args;
  if (!(state instanceof Uint8Array) || state.length !== 10) fail("unsupported datetime state");
  const year = (state[0]! << 8) | state[1]!;
  const month = state[2]! & 0x7f; // the high bit is `fold`
  const micros = (state[7]! << 16) | (state[8]! << 8) | state[9]!;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, state[3]!);
  date.setUTCHours(state[4]!, state[5]!, state[6]!, Math.floor(micros / 1000));
  // Naive datetimes are taken as UTC, which is what Celery writes with enable_utc (the default).
  const offset = tz instanceof PyTimezone ? tz.offsetSeconds : 0;
  if (tz !== undefined && tz !== null && !(tz instanceof PyTimezone)) fail("unsupported tzinfo");
  return new Date(date.getTime() - offset * 1000);
}

/** Values with no parts the shape check needs to visit. */
function isLeaf(value: unknown): boolean {
  return (
    typeof value !== "object" ||
    value === null ||
    value instanceof Uint8Array ||
    value instanceof Date ||
    value instanceof PyGlobal ||
    value instanceof PyTimezone ||
    value instanceof PyTimedelta
  );
}

interface Shape {
  depth: number;
  items: number;
}

interface ShapeFrame {
  readonly node: object;
  readonly children: unknown[];
  next: number;
  depth: number;
  items: number;
}

/**
 * Refuses a decoded value that would be too deep, too large or endless to walk as a tree: memo
 * references make a pickle a graph, and every consumer (our exception repr, `JSON.stringify`, the
 * caller's own code) walks it as a tree. Iterative, memoized per object, so it costs one visit per
 * object and reference however large the tree would be.
 */
function checkShape(root: unknown, limits: ResolvedDecodeLimits, fail: (message: string) => never): void {
  if (isLeaf(root)) return;
  const done = new Map<object, Shape>();
  const active = new Set<object>();
  const frames: ShapeFrame[] = [];
  const open = (node: object): void => {
    if (frames.length >= limits.maxDepth) fail(`values nested more than ${limits.maxDepth} levels deep (maxDepth)`);
    active.add(node);
    frames.push({ node, children: Array.isArray(node) ? node : Object.values(node), next: 0, depth: 0, items: 0 });
  };
  const add = (frame: ShapeFrame, shape: Shape): void => {
    frame.depth = Math.max(frame.depth, shape.depth);
    frame.items += shape.items;
    if (frame.items > limits.maxItems) fail(`more than ${limits.maxItems} values once shared references are expanded (maxItems)`);
    if (frames.length + shape.depth > limits.maxDepth) fail(`values nested more than ${limits.maxDepth} levels deep (maxDepth)`);
  };
  open(root as object);
  for (;;) {
    const frame = frames[frames.length - 1]!;
    if (frame.next < frame.children.length) {
      const child = frame.children[frame.next++];
      if (isLeaf(child)) {
        add(frame, { depth: 0, items: 1 });
        continue;
      }
      const seen = done.get(child as object);
      if (seen) add(frame, seen);
      else if (active.has(child as object)) fail("a value contains itself (a reference cycle), which has no plain-data form");
      else open(child as object);
      continue;
    }
    frames.pop();
    active.delete(frame.node);
    const shape = { depth: frame.depth + 1, items: frame.items + 1 };
    done.set(frame.node, shape);
    const parent = frames[frames.length - 1];
    if (!parent) return;
    add(parent, shape);
  }
}

/** Replaces timedeltas by their seconds; refuses stray timezones and globals. Runs after `checkShape`, so it cannot recurse deeply. */
function finish(value: unknown, seen = new Set<object>()): unknown {
  if (value instanceof PyTimedelta) return value.seconds;
  if (value instanceof PyTimezone || value instanceof PyGlobal) {
    throw new SerializationError("cannot decode pickle: it holds a bare timezone or class, not plain data", "body");
  }
  if (typeof value !== "object" || value === null || value instanceof Uint8Array || value instanceof Date || seen.has(value)) return value;
  seen.add(value);
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const item = record[key];
    const next = finish(item, seen);
    if (next !== item) record[key] = next;
  }
  return value;
}

function decodeUtf8Surrogatepass(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // Python pickles unpaired surrogates as their 3-byte forms ("surrogatepass").
    const bad = (): never => {
      throw new SerializationError("cannot decode pickle: a string is not UTF-8", "body");
    };
    let out = "";
    for (let i = 0; i < bytes.length; ) {
      const b = bytes[i]!;
      const need = b < 0x80 ? 0 : b >= 0xf8 ? -1 : b >= 0xf0 ? 3 : b >= 0xe0 ? 2 : b >= 0xc0 ? 1 : -1;
      if (need < 0 || i + need >= bytes.length) bad();
      let c = need === 0 ? b : b & (0x3f >> need);
      for (let k = 1; k <= need; k++) {
        const cont = bytes[i + k];
        if (cont === undefined || (cont & 0xc0) !== 0x80) bad();
        c = (c << 6) | (cont! & 0x3f);
      }
      if (c > 0x10ffff) bad();
      out += String.fromCodePoint(c);
      i += need + 1;
    }
    return out;
  }
}

/**
 * `pickle.loads` for results: plain data, bytes, tuples, sets (as arrays) and datetimes only.
 * Bounded by `limits` (see `DecodeLimits`): input size, steps per input byte, nesting, and values
 * once shared references are expanded; every failure is a `SerializationError` (or
 * `PayloadTooLargeError` for the size).
 */
export function decodePickle(bytes: Uint8Array, limits?: DecodeLimits): unknown {
  const resolved = resolveDecodeLimits(limits);
  checkInputSize(bytes.length, resolved, "pickle");
  const reader = new PickleReader(bytes, resolved);
  try {
    const value = reader.read();
    checkShape(value, resolved, (m) => reader.fail(m));
    return reader.usedGlobals ? finish(value) : value;
  } catch (err) {
    if (err instanceof CeleryError) throw err;
    // Defensive: whatever the checks above missed still reaches the caller as a typed error.
    throw new SerializationError(`cannot decode pickle: ${err instanceof Error ? err.message : String(err)}`, "body", { cause: err });
  }
}

export const pickleSerializer: Serializer & { decode(bytes: Uint8Array, limits?: DecodeLimits): unknown } = {
  name: "pickle",
  contentType: "application/x-python-serialize",
  contentEncoding: "binary",
  encode(value: unknown): Uint8Array {
    checkValue(value, PICKLE_RULES, "body");
    return encodePickle(value);
  },
  decode: decodePickle,
};
