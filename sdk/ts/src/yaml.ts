/**
 * A small YAML emitter for the JSON values an experiment holds (mappings, sequences, strings, numbers,
 * booleans, null) — block style, readable, and read back identically by YAML 1.1 and 1.2 parsers
 * (the lab reads it with PyYAML's safe_load).
 *
 * Strings are plain only when no parser could take them for anything else; otherwise they are
 * double-quoted with JSON's escapes, which YAML's double-quoted style shares. Numbers in exponent form
 * get a decimal point, which YAML 1.1 requires of a float. Non-finite numbers are refused.
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

const PLAIN = /^[A-Za-z_][A-Za-z0-9_./-]*$/;
// Words YAML 1.1 reads as booleans or null, in any of their spellings.
const RESERVED = /^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL)$/;

export function scalar(value: string | number | boolean | null): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return number(value);
  return PLAIN.test(value) && !RESERVED.test(value) ? value : JSON.stringify(value);
}

function number(value: number): string {
  if (!Number.isFinite(value)) throw new TypeError(`not a finite number: ${value}`);
  const text = String(value);
  const [mantissa, exponent] = text.split('e');
  if (exponent === undefined || mantissa === undefined) return text;
  return `${mantissa.includes('.') ? mantissa : `${mantissa}.0`}e${exponent}`;
}

function isEmpty(value: JsonValue): boolean {
  return Array.isArray(value) ? value.length === 0 : typeof value === 'object' && value !== null && Object.keys(value).length === 0;
}

function inline(value: JsonValue): string | null {
  if (value === null || typeof value !== 'object') return scalar(value);
  if (isEmpty(value)) return Array.isArray(value) ? '[]' : '{}';
  return null;
}

function lines(value: JsonValue, indent: string): string[] {
  const out: string[] = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      const one = inline(item);
      if (one !== null) {
        out.push(`${indent}- ${one}`);
      } else {
        // A nested block starts on the dash's line: "- id: a" then "  bindings: …".
        const [first, ...rest] = lines(item, `${indent}  `);
        out.push(`${indent}- ${(first ?? '').trimStart()}`, ...rest);
      }
    }
    return out;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const one = inline(item);
      out.push(one !== null ? `${indent}${scalar(key)}: ${one}` : `${indent}${scalar(key)}:`);
      if (one === null) out.push(...lines(item, `${indent}  `));
    }
    return out;
  }
  return [`${indent}${scalar(value)}`];
}

/** The value as a YAML document (a mapping at the top, for an experiment). */
export function toYaml(value: JsonValue): string {
  const one = inline(value);
  return one !== null ? `${one}\n` : `${lines(value, '').join('\n')}\n`;
}
