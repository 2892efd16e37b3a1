import type { OutgoingMessage } from '../../backend/broker-backend.interface';
import {
  copyFields,
  deadLetterFields,
  type EntryFields,
  fieldMap,
  publishFields,
  pushPublishFields,
  toDeadLetter,
  toDelivery,
} from './redis-messages';

const message = (overrides: Partial<OutgoingMessage> = {}): OutgoingMessage => ({
  topic: 'order.created',
  body: Buffer.from('{"id":42}'),
  headers: {},
  messageId: 'm-1',
  timestamp: 1_700_000_000_000,
  ...overrides,
});

/** An entry's fields as Redis returns them: every name and value as bytes. */
const asRaw = (fields: EntryFields): Buffer[] =>
  fields.map((f) => (typeof f === 'string' ? Buffer.from(f) : f));

const fromTopic = (raw: Buffer[]) =>
  toDelivery(raw, { kind: 't', name: 'order.created' }, 'billing.orders', '1700000000000-0', false);

/** What every publish of {@link message} writes first. */
const FIRST_FIELDS = ['body', '{"id":42}', 'message-id', 'm-1'];

describe('Redis entry fields', () => {
  it('write the content encoding as a field of its own and read it back', () => {
    const fields = pushPublishFields<EntryFields>(
      [],
      message({ contentType: 'application/json', contentEncoding: 'gzip' }),
    );
    expect(fields).toEqual([
      ...FIRST_FIELDS,
      'content-type',
      'application/json',
      'content-encoding',
      'gzip',
    ]);
    expect(fromTopic(asRaw(fields)).contentEncoding).toBe('gzip');
  });

  it('write headers without a ce- one as one JSON field, as before', () => {
    const headers = { 'x-custom': 'yes', n: 3, 'CE-upper': 'not an attribute' };
    const fields = pushPublishFields<EntryFields>([], message({ headers }));
    expect(fields).toEqual([...FIRST_FIELDS, 'headers', JSON.stringify(headers)]);
  });

  it('write ce- headers as fields of their own, and read them back as headers', () => {
    const headers = {
      'ce-specversion': '1.0',
      'x-custom': 'yes',
      'ce-id': 42,
    };
    const fields = pushPublishFields<EntryFields>([], message({ headers }));
    expect(fields).toEqual([
      ...FIRST_FIELDS,
      'ce-specversion',
      '1.0',
      'ce-id',
      '42',
      'headers',
      '{"x-custom":"yes"}',
    ]);
    expect(fromTopic(asRaw(fields)).headers).toEqual({
      'x-custom': 'yes',
      'ce-specversion': '1.0',
      'ce-id': '42',
    });
  });

  it('leave the headers field out when every header is a ce- one; a delayed publish too', () => {
    const headers = { 'ce-type': 'order.created' };
    expect(pushPublishFields<EntryFields>([], message({ headers }))).not.toContain('headers');
    const delayed = publishFields(message({ headers, delayMs: 100 }));
    expect(delayed).toEqual(expect.arrayContaining(['ce-type', 'order.created', 'timestamp']));
    expect(delayed).not.toContain('headers');
  });

  it("read a plain producer's ce- fields into the headers, a field winning over headers", () => {
    const raw = asRaw([
      'body',
      '{"id":42}',
      'content-type',
      'application/json',
      'headers',
      '{"ce-source":"/old","note":"kept"}',
      'ce-specversion',
      '1.0',
      'ce-id',
      '42',
      'ce-type',
      'order.created',
      'ce-source',
      '/shop',
      'other',
      'ignored',
    ]);
    const delivery = fromTopic(raw);
    expect(delivery.headers).toEqual({
      note: 'kept',
      'ce-specversion': '1.0',
      'ce-id': '42',
      'ce-type': 'order.created',
      'ce-source': '/shop',
    });
    expect(delivery.contentType).toBe('application/json');
  });

  it('keep ce- headers through a retry copy and a dead letter (in their headers field)', () => {
    const published = asRaw(
      pushPublishFields<EntryFields>([], message({ headers: { 'ce-id': '42', a: 1 } })),
    );
    const first = fromTopic(published);
    const retry = toDelivery(
      asRaw(copyFields(first, first.headers, 'retry', 2)),
      { kind: 'q', name: 'billing.orders' },
      'billing.orders',
      '1700000000001-0',
      false,
    );
    expect(retry).toMatchObject({ attempt: 2, headers: { 'ce-id': '42', a: 1 } });
    const letter = toDeadLetter(fieldMap(asRaw(deadLetterFields(first, first.headers))), '1-0');
    expect(letter.headers).toMatchObject({ 'ce-id': '42', a: 1 });
  });

  it('read the ce- fields of a dead letter written by another client', () => {
    const raw = asRaw(['body', 'x', 'ce-id', '7', 'headers', '{"a":1}']);
    expect(toDeadLetter(fieldMap(raw), '1700000000000-0').headers).toEqual({ a: 1, 'ce-id': '7' });
  });
});
