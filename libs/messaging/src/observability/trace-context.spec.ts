import { formatTraceparent, newSpanId, parseTraceparent, traceIdOf } from './trace-context';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('W3C traceparent', () => {
  it.each([
    [`00-${TRACE}-${SPAN}-01`, { traceId: TRACE, spanId: SPAN, flags: 1 }],
    [`00-${TRACE}-${SPAN}-00`, { traceId: TRACE, spanId: SPAN, flags: 0 }],
    [` 00-${TRACE}-${SPAN}-01 `, { traceId: TRACE, spanId: SPAN, flags: 1 }],
    // A later version may carry more fields; version 00 may not.
    [`01-${TRACE}-${SPAN}-01-extra`, { traceId: TRACE, spanId: SPAN, flags: 1 }],
    [`00-${TRACE}-${SPAN}-01-extra`, undefined],
    [`ff-${TRACE}-${SPAN}-01`, undefined],
    [`00-${'0'.repeat(32)}-${SPAN}-01`, undefined],
    [`00-${TRACE}-${'0'.repeat(16)}-01`, undefined],
    [`00-${TRACE.toUpperCase()}-${SPAN}-01`, undefined],
    [`00-${TRACE}-${SPAN}`, undefined],
    ['', undefined],
    [42, undefined],
    [undefined, undefined],
  ])('reads %j as %j', (header, expected) => {
    expect(parseTraceparent(header)).toEqual(expected);
  });

  it('keeps tracestate with a valid traceparent only', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`, 'vendor=x')).toMatchObject({
      state: 'vendor=x',
    });
    expect(parseTraceparent('nonsense', 'vendor=x')).toBeUndefined();
  });

  it('writes what it reads', () => {
    const context = { traceId: traceIdOf('order-1'), spanId: newSpanId(), flags: 1 };
    expect(context.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(context.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(parseTraceparent(formatTraceparent(context))).toEqual(context);
    expect(new Set(Array.from({ length: 1000 }, newSpanId)).size).toBe(1000);
  });

  it.each([
    ['0b8a4c2e-6f1d-4a3b-9c7e-5d2f1a0b3c4d', '0b8a4c2e6f1d4a3b9c7e5d2f1a0b3c4d'],
    ['0B8A4C2E-6F1D-4A3B-9C7E-5D2F1A0B3C4D', '0b8a4c2e6f1d4a3b9c7e5d2f1a0b3c4d'],
  ])('takes the trace id of message %s from its UUID', (messageId, traceId) => {
    expect(traceIdOf(messageId)).toBe(traceId);
  });

  it('hashes a message id that is not a UUID, the same way every time', () => {
    expect(traceIdOf('order-1')).toMatch(/^[0-9a-f]{32}$/);
    expect(traceIdOf('order-1')).toBe(traceIdOf('order-1'));
    expect(traceIdOf('order-2')).not.toBe(traceIdOf('order-1'));
    expect(traceIdOf('00000000-0000-0000-0000-000000000000')).not.toMatch(/^0+$/);
  });
});
