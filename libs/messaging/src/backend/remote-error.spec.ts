import { ConflictException, HttpException, NotFoundException } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import { RemoteHandlerError, UnrecoverableError } from '../errors/messaging.errors';
import { MessagingHeaders } from './message-headers';
import {
  MAX_DETAILS_BYTES,
  remoteErrorBody,
  remoteErrorReply,
  remoteHandlerError,
} from './remote-error';

class StockError extends Error {
  readonly code = 'OUT_OF_STOCK';
  readonly status = 409;
  readonly details = { sku: 'A-1', left: 0 };
  readonly secret = 'not for the caller';
}

/** What crosses the wire for what a handler throws. */
const BODIES: Array<[string, unknown, object]> = [
  ['a plain Error', new Error('boom'), { message: 'boom', errorClass: 'Error' }],
  [
    'an error with code, status and details of its own',
    new StockError('no stock'),
    {
      message: 'no stock',
      errorClass: 'StockError',
      code: 'OUT_OF_STOCK',
      status: 409,
      details: { sku: 'A-1', left: 0 },
    },
  ],
  [
    'an HttpException: its status and response object',
    new NotFoundException({ message: 'no cart c1', cartId: 'c1' }),
    {
      message: 'no cart c1',
      errorClass: 'NotFoundException',
      status: 404,
      details: { message: 'no cart c1', cartId: 'c1' },
    },
  ],
  [
    'an HttpException with a string response: no details (the message is it)',
    new HttpException('teapot', 418),
    { message: 'teapot', errorClass: 'HttpException', status: 418 },
  ],
  [
    "an RpcException's error object lends its code, status and details",
    new RpcException({ message: 'denied', code: 'E_DENIED', status: 403, details: ['a'] }),
    {
      message: 'denied',
      errorClass: 'RpcException',
      code: 'E_DENIED',
      status: 403,
      details: ['a'],
    },
  ],
  [
    'a numeric code (a database error)',
    Object.assign(new Error('duplicate key'), { code: 23505 }),
    { message: 'duplicate key', errorClass: 'Error', code: 23505 },
  ],
  [
    'a code or status of the wrong type is left out',
    Object.assign(new Error('odd'), { code: { x: 1 }, status: '500', details: null }),
    { message: 'odd', errorClass: 'Error', details: null },
  ],
  [
    "the library's own errors keep their code",
    new UnrecoverableError('gone'),
    { message: 'gone', errorClass: 'UnrecoverableError', code: 'UNRECOVERABLE' },
  ],
  ['a thrown string', 'plain text', { message: 'plain text', errorClass: 'string' }],
  [
    'a getter that throws is read as absent',
    Object.defineProperty(new Error('trap'), 'details', {
      get() {
        throw new Error('no');
      },
    }),
    { message: 'trap', errorClass: 'Error' },
  ],
];

describe('remoteErrorBody', () => {
  it.each(BODIES)('%s', (_case, thrown, body) => {
    expect(remoteErrorBody(thrown)).toEqual(body);
  });
});

describe('remoteErrorReply', () => {
  const parse = (thrown: unknown, omitted?: (why: string) => void) => {
    const reply = remoteErrorReply(thrown, omitted);
    return { reply, body: JSON.parse(reply.body.toString('utf8')) as Record<string, unknown> };
  };

  it('is a JSON body marked with the class, with no stack nor other property', () => {
    const { reply, body } = parse(new StockError('no stock'));
    expect(reply.contentType).toBe('application/json');
    expect(reply.headers).toEqual({ [MessagingHeaders.REPLY_ERROR]: 'StockError' });
    expect(Object.keys(body).sort()).toEqual([
      'code',
      'details',
      'errorClass',
      'message',
      'status',
    ]);
    expect(reply.body.toString()).not.toContain('at ');
  });

  it('leaves out details that cannot be JSON or are too large, and says why', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const why: string[] = [];
    const big = 'x'.repeat(MAX_DETAILS_BYTES + 1);
    for (const details of [cyclic, { big }, 10n]) {
      const { body } = parse(Object.assign(new Error('e'), { details, code: 'C' }), (w) =>
        why.push(w),
      );
      expect(body).toEqual({ message: 'e', errorClass: 'Error', code: 'C' });
    }
    expect(why).toEqual([
      expect.stringContaining('cannot be written as JSON'),
      `they are over ${MAX_DETAILS_BYTES} bytes of JSON`,
      expect.stringContaining('cannot be written as JSON'),
    ]);
  });
});

describe('remoteHandlerError', () => {
  it('gives the caller what the handler said of its error', () => {
    const body: unknown = JSON.parse(
      remoteErrorReply(new ConflictException({ sku: 'A-1' })).body.toString(),
    );
    const error = remoteHandlerError(body, 'ConflictException');
    expect(error).toBeInstanceOf(RemoteHandlerError);
    expect(error.message).toBe(new ConflictException({ sku: 'A-1' }).message);
    expect(error).toMatchObject({
      code: 'REMOTE_HANDLER_ERROR',
      remoteErrorClass: 'ConflictException',
      status: 409,
      details: { sku: 'A-1' },
    });
    expect(error.remoteCode).toBeUndefined();
  });

  it.each<[string, unknown, unknown, object]>([
    [
      'a body that is not an object',
      'oops',
      'X',
      { message: 'The handler failed', remoteErrorClass: 'X' },
    ],
    [
      'no class header: the body names it',
      { message: 'm', errorClass: 'Y' },
      undefined,
      { remoteErrorClass: 'Y' },
    ],
    ['neither', { message: 'm' }, undefined, { remoteErrorClass: 'Error' }],
    [
      'a code or status of the wrong type from a foreign replier is dropped; details are any JSON',
      { message: 'm', code: [1], status: 'x', details: null },
      'Z',
      { remoteCode: undefined, status: undefined, details: null },
    ],
  ])('reads only typed fields: %s', (_case, body, header, expected) => {
    expect(remoteHandlerError(body, header)).toMatchObject(expected);
  });
});
