/**
 * CloudEvents binary-mode attributes on Redis Streams: fields of an entry whose names start with
 * `ce-`. A plain producer writes an event as
 * `XADD <stream> * body '{...}' content-type application/json ce-specversion 1.0 ce-id 42 ce-type order.created ce-source /shop`,
 * and a plain consumer reads the attributes as fields; the library's other headers travel in its
 * JSON `headers` field (`redis-messages.ts`).
 *
 * | Where                      | A header named `ce-…` (lower case: `CE-id` is an ordinary header)  |
 * | -------------------------- | ------------------------------------------------------------------ |
 * | publish (at once, delayed, | a field of that name, its value as text (`String(value)`); not in  |
 * | routed by the script)      | `headers`                                                          |
 * | read (a delivery, a dead   | the header of that name, a string; a field wins over a `headers`   |
 * | letter)                    | entry of the same name: the field is what every plain consumer sees |
 * | retry, requeue, dead       | in `headers` with the others: a copy reads it back from there      |
 * | letter, replay             |                                                                    |
 *
 * So a `ce-` header comes back as a string (`ce-id: 42` is read as `'42'`): CloudEvents attributes
 * are strings in binary mode. A publish without a `ce-` header pays one pass over its header names,
 * no allocation; a read pays a prefix check for a field name it does not know, and allocates only for
 * the `ce-` ones.
 */
import type { MessageHeaders } from '../../backend/broker-backend.interface';

/** What the names of CloudEvents attribute fields (and headers) start with. */
export const CLOUDEVENTS_PREFIX = 'ce-';

/** Whether field or header `name` is a CloudEvents attribute. */
export function isCloudEventsName(name: string): boolean {
  return name.startsWith(CLOUDEVENTS_PREFIX);
}

/** Whether `headers` has a header {@link pushHeaderFields} writes as a field of its own. */
export function hasCloudEventsHeader(headers: MessageHeaders): boolean {
  for (const key in headers) if (isCloudEventsName(key)) return true;
  return false;
}

/**
 * Appends `headers` to the fields in `args`: each `ce-` header as a field of its own (undefined and
 * null ones left out, as JSON leaves them), the others as the JSON `headers` field, left out when
 * there are none. For headers where {@link hasCloudEventsHeader} holds; the others are written whole.
 */
export function pushHeaderFields(
  args: Array<string | Buffer | number>,
  headers: MessageHeaders,
): void {
  let rest: Record<string, MessageHeaders[string]> | undefined;
  for (const key in headers) {
    const value = headers[key];
    if (!isCloudEventsName(key)) (rest ??= {})[key] = value;
    else if (value !== undefined && value !== null) args.push(key, String(value));
  }
  if (rest !== undefined) args.push('headers', JSON.stringify(rest));
}

/**
 * `headers` (read from the `headers` field, owned by the caller) with the `ce-` fields of an entry,
 * given as name/value pairs as Redis returned them; the field wins on a clash. Returns `headers`.
 */
export function withCloudEventsFields(
  headers: Record<string, unknown>,
  fields: readonly Buffer[] | undefined,
): Record<string, unknown> {
  if (fields === undefined) return headers;
  for (let i = 0; i + 1 < fields.length; i += 2)
    headers[fields[i].toString('utf8')] = fields[i + 1].toString('utf8');
  return headers;
}
