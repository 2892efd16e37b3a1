import { MalformedMessageError } from '../errors/messaging.errors';

// Cheap pre-checks on the raw text (secure-json-parse's approach): only a body that could hold a
// dangerous key is walked, so the common case costs two regex scans.
const PROTO_KEY =
  /"(?:_|\\u005[Ff])(?:_|\\u005[Ff])(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[Ff])(?:t|\\u0074)(?:o|\\u006[Ff])(?:_|\\u005[Ff])(?:_|\\u005[Ff])"\s*:/;
const CONSTRUCTOR_KEY =
  /"(?:c|\\u0063)(?:o|\\u006[Ff])(?:n|\\u006[Ee])(?:s|\\u0073)(?:t|\\u0074)(?:r|\\u0072)(?:u|\\u0075)(?:c|\\u0063)(?:t|\\u0074)(?:o|\\u006[Ff])(?:r|\\u0072)"\s*:/;

/**
 * Rejects parsed JSON that could pollute prototypes (`__proto__` keys, `constructor.prototype`) or
 * that nests deeper than `maxDepth` (deep nesting makes recursive walkers, such as
 * class-transformer or `JSON.stringify`, throw `RangeError`).
 *
 * @throws MalformedMessageError with the reason.
 */
export function assertSafeJson(text: string, value: unknown, maxDepth: number): void {
  if (text.length > maxDepth * 2 && mayNestDeeperThan(text, maxDepth)) assertDepth(text, maxDepth);
  if (typeof value !== 'object' || value === null) return;
  // A key spelled with escapes needs a backslash; without one, a plain substring search says it all.
  const escaped = text.includes('\\');
  const hasProto = (escaped || text.includes('__proto__')) && PROTO_KEY.test(text);
  const hasConstructor = (escaped || text.includes('constructor')) && CONSTRUCTOR_KEY.test(text);
  if (hasProto || hasConstructor) walk(value, hasProto, hasConstructor);
}

/**
 * False when `text` holds at most `maxDepth` opening brackets in all, so it cannot nest deeper
 * (counted with native substring searches, far cheaper than scanning every character).
 */
function mayNestDeeperThan(text: string, maxDepth: number): boolean {
  let count = 0;
  for (const bracket of ['{', '[']) {
    for (let i = text.indexOf(bracket); i !== -1; i = text.indexOf(bracket, i + 1)) {
      if (++count > maxDepth) return true;
    }
  }
  return false;
}

function assertDepth(text: string, maxDepth: number): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) {
        throw new MalformedMessageError(`The JSON body nests deeper than ${maxDepth} levels`);
      }
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
}

function walk(root: object, checkProto: boolean, checkConstructor: boolean): void {
  const stack: object[] = [root];
  while (stack.length > 0) {
    const node = stack.pop() as Record<string, unknown>;
    if (checkProto && Object.prototype.hasOwnProperty.call(node, '__proto__')) {
      throw new MalformedMessageError(
        'The JSON body has a "__proto__" key (prototype pollution attempt)',
      );
    }
    if (
      checkConstructor &&
      Object.prototype.hasOwnProperty.call(node, 'constructor') &&
      typeof node.constructor === 'object' &&
      node.constructor !== null &&
      Object.prototype.hasOwnProperty.call(node.constructor, 'prototype')
    ) {
      throw new MalformedMessageError(
        'The JSON body has a "constructor.prototype" key (prototype pollution attempt)',
      );
    }
    for (const key in node) {
      const child = node[key];
      if (typeof child === 'object' && child !== null) stack.push(child);
    }
  }
}
