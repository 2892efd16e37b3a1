/**
 * How the dashboard groups dead letters: by the error's class and the *shape* of its message, the
 * message with its variable parts replaced, so that one cause failing for many orders is one group.
 * The rules run in this order, each on what the previous ones left:
 *
 * | rule                 | matches                                                      | becomes | example                                        |
 * | -------------------- | ------------------------------------------------------------ | ------- | ---------------------------------------------- |
 * | quoted value         | `'…'`, `"…"` or `` `…` `` on one line                        | `"…"`   | `user 'ann' not found` → `user "…" not found`  |
 * | UUID                 | 8-4-4-4-12 hex digits                                        | `<id>`  | `order 9b2f…-…-…` → `order <id>`               |
 * | hex id               | `0x` + hex digits, or 8+ hex digits with a digit and a letter | `<id>`  | `doc 5f3a9c0b1d2e` → `doc <id>`                |
 * | long token           | 16+ letters, digits, `_` or `-` with a digit among them      | `<id>`  | `key ord_2NfXk39sQpLm8vT` → `key <id>`         |
 * | number               | digits, with a decimal part                                  | `#`     | `timeout after 30.5 s (try 3)` → `timeout after # s (try #)` |
 * | spaces               | runs of white space                                          | one ` ` | trimmed too                                    |
 * | length               | over {@link MAX_SHAPE_LENGTH} characters                     | cut, `…` |                                               |
 *
 * The fingerprint is a short hash of class and shape: the same in every process and every run (a
 * group keeps its id across reloads), safe in a URL, and different for two classes whatever their
 * messages (`TypeError: x` and `RangeError: x` never group).
 */
import { createHash } from 'node:crypto';

/** Longest error shape kept: a message with a stack or a dump in it still groups. */
export const MAX_SHAPE_LENGTH = 200;

/** An error's group: its fingerprint, class and message shape. */
export interface ErrorFingerprint {
  /** 16 hex digits: the group's id in the dashboard's URLs. */
  readonly fingerprint: string;
  readonly errorClass: string;
  /** The message with its variable parts shown as `#`, `<id>`, `"…"`. */
  readonly shape: string;
}

const RULES: readonly (readonly [RegExp, string])[] = [
  [/'[^'\n]*'|"[^"\n]*"|`[^`\n]*`/g, '"…"'],
  [/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '<id>'],
  [/\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b/gi, '<id>'],
  [/(?<![\w-])(?=[\w-]*\d)[\w-]{16,}(?![\w-])/g, '<id>'],
  [/\d+(?:\.\d+)?/g, '#'],
  [/\s+/g, ' '],
];

/** `message` with its variable parts replaced (the table of the file comment). */
export function errorShape(message: string): string {
  let shape = message;
  for (const [pattern, replacement] of RULES) shape = shape.replace(pattern, replacement);
  shape = shape.trim();
  return shape.length > MAX_SHAPE_LENGTH ? `${shape.slice(0, MAX_SHAPE_LENGTH - 1)}…` : shape;
}

/** The group of an error of class `errorClass` with `message` (see the file comment). */
export function errorFingerprint(errorClass: string, message: string): ErrorFingerprint {
  const shape = errorShape(message);
  const fingerprint = createHash('sha256')
    .update(errorClass)
    .update('\0')
    .update(shape)
    .digest('hex')
    .slice(0, 16);
  return { fingerprint, errorClass, shape };
}
