/**
 * @module
 * Celery writes `eta`/`expires` with Python's `datetime.isoformat()` on an aware UTC datetime:
 * microseconds only when non-zero, offset as `+00:00`. Dates keep microseconds when they arrive as
 * ISO strings from another system, so we carry time as epoch microseconds, not `Date`.
 */
import { ConfigurationError } from "../errors.js";

/** A UTC instant with microsecond precision. */
export interface Instant {
  /** Microseconds since the epoch. */
  readonly micros: number;
}

export function instantFromDate(date: Date): Instant {
  return { micros: date.getTime() * 1000 };
}

export function instantFromMillis(ms: number): Instant {
  return { micros: Math.round(ms * 1000) };
}

export function millisOf(instant: Instant): number {
  return instant.micros / 1000;
}

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$/;

/** Parses ISO 8601 with an explicit offset (naive times are refused: Celery treats them as local). */
export function parseIso(text: string, field: string): Instant {
  const m = ISO_RE.exec(text);
  if (!m) {
    throw new ConfigurationError(`${field} must be an ISO 8601 date-time with an offset, got ${JSON.stringify(text)}`, {
      code: "ERR_INVALID_OPTION",
    });
  }
  const [, y, mo, d, h, mi, s, frac = "", off] = m as unknown as string[];
  const base = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  // Date.UTC rolls 2030-02-30 over into March; Python refuses such a date, so do we.
  if (Number.isNaN(base) || new Date(base).toISOString().slice(0, 19) !== `${y}-${mo}-${d}T${h}:${mi}:${s}`) {
    throw new ConfigurationError(`${field} is not a valid date: ${JSON.stringify(text)}`, { code: "ERR_INVALID_OPTION" });
  }
  const micros = Number((frac + "000000").slice(0, 6));
  let offsetMinutes = 0;
  if (off !== "Z") {
    const sign = off!.startsWith("-") ? -1 : 1;
    const digits = off!.slice(1).replace(":", "");
    offsetMinutes = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4)));
  }
  return { micros: (base - offsetMinutes * 60_000) * 1000 + micros };
}

const pad = (n: number, width = 2): string => String(n).padStart(width, "0");

/** Python's `datetime.isoformat(sep)` for an aware UTC datetime: `d`'s fields to the second, then `micros`. */
export function isoformatUtc(d: Date, micros: number, sep = "T"): string {
  const head =
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `${sep}${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return `${head}${micros ? "." + pad(micros, 6) : ""}+00:00`;
}

/** Python's `datetime.isoformat()` for an aware UTC datetime. */
export function isoformat(instant: Instant): string {
  const seconds = Math.floor(instant.micros / 1_000_000);
  return isoformatUtc(new Date(seconds * 1000), instant.micros - seconds * 1_000_000);
}
