/**
 * @module
 * JavaScript has no tuple, but Celery's wire format distinguishes them (argsrepr `(2, 3)`, pickle
 * TUPLE opcodes). `PyTuple` is an array everywhere else, so JSON/YAML/msgpack encode it as a list
 * exactly as Python's encoders do for tuples.
 */
export class PyTuple<T = unknown> extends Array<T> {
  static of<T>(...items: T[]): PyTuple<T> {
    const t = new PyTuple<T>();
    t.push(...items);
    return t;
  }
  static fromArray<T>(items: readonly T[]): PyTuple<T> {
    return PyTuple.of(...items);
  }
}

export function isPyTuple(value: unknown): value is PyTuple {
  return value instanceof PyTuple;
}
