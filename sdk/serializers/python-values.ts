/**
 * @module
 * JavaScript has no tuple, but Celery's wire format distinguishes them (argsrepr `(2, 3)`, pickle
 * TUPLE opcodes). `PyTuple` is an array everywhere else, so JSON/YAML/msgpack encode it as a list
 * exactly as Python's encoders do for tuples.
 */
export class PyTuple<T = unknown> extends Array<T> {
  static of<T>(...items: T[]): PyTuple<T> {
    return PyTuple.fromArray(items);
  }
  static fromArray<T>(items: readonly T[]): PyTuple<T> {
    // Not push(...items): spreading a long argument list overflows the stack (and is slower).
    const t = new PyTuple<T>();
    for (let i = 0; i < items.length; i++) t[i] = items[i]!;
    return t;
  }
}

export function isPyTuple(value: unknown): value is PyTuple {
  return value instanceof PyTuple;
}
