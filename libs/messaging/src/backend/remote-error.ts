/**
 * A handler's error on the wire, when the message it failed on is a request: what the server
 * replies and what the caller's `RemoteHandlerError` carries (SPEC §5, typed errors across
 * request/reply). The reply is a JSON body marked by the `x-messaging-error` header (the class):
 *
 * | field        | taken from the handler's error                                          | on the caller's error |
 * | ------------ | ----------------------------------------------------------------------- | --------------------- |
 * | `message`    | its message (an `HttpException`'s response message), at most 1 KiB       | `message`             |
 * | `errorClass` | its class name                                                          | `remoteErrorClass`    |
 * | `code`       | its own `code` property, when a string or a finite number               | `remoteCode`          |
 * | `status`     | an `HttpException`'s status, else its own `status` when a finite number | `status`              |
 * | `details`    | an `HttpException`'s response object, else its own `details` property   | `details`             |
 *
 * An `RpcException` whose error is an object lends that object's `code`, `status` and `details`.
 * Nothing else of the error crosses: never its stack, nor its other properties. `details` crosses
 * as JSON, at most {@link MAX_DETAILS_BYTES} of it; details that cannot be written as JSON (a cycle,
 * a BigInt) or that are larger are left out, and the handler's log says so. The caller reads only
 * these fields, each of the type above, whatever a foreign replier sent.
 */
import { HttpException } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import { describeFailure } from '../errors/failure';
import { RemoteHandlerError } from '../errors/messaging.errors';
import type { OutgoingReply } from './broker-backend.interface';
import { MessagingHeaders } from './message-headers';

/** Largest `details` sent, in bytes of JSON. */
export const MAX_DETAILS_BYTES = 16 * 1024;

/** The body of an error reply. */
export interface RemoteErrorBody {
  readonly message: string;
  readonly errorClass: string;
  readonly code?: string | number;
  readonly status?: number;
  readonly details?: unknown;
}

/** The error reply to a request whose handler threw `error`; `omitted` hears why details were left out. */
export function remoteErrorReply(error: unknown, omitted?: (why: string) => void): OutgoingReply {
  const body = remoteErrorBody(error);
  let json = body.details === undefined ? JSON.stringify(body) : withDetails(body, omitted);
  json ??= JSON.stringify({ ...body, details: undefined });
  return {
    body: Buffer.from(json),
    contentType: 'application/json',
    headers: { [MessagingHeaders.REPLY_ERROR]: body.errorClass },
  };
}

/** What of `error` crosses the wire (see the table above). Never throws. */
export function remoteErrorBody(error: unknown): RemoteErrorBody {
  const { message, errorClass } = describeFailure(error, 'handler-error', new Date());
  const source = typeSource(error);
  const code = read(source, 'code');
  const status = error instanceof HttpException ? safeStatus(error) : read(source, 'status');
  const details = error instanceof HttpException ? responseObject(error) : read(source, 'details');
  return {
    message,
    errorClass,
    ...(isCode(code) ? { code } : {}),
    ...(isStatus(status) ? { status } : {}),
    ...(details !== undefined ? { details } : {}),
  };
}

/** The caller's error for an error reply: `decoded` is its body, `errorClass` its header. */
export function remoteHandlerError(decoded: unknown, errorClass: unknown): RemoteHandlerError {
  const body = (typeof decoded === 'object' && decoded !== null ? decoded : {}) as Record<
    string,
    unknown
  >;
  const message = typeof body.message === 'string' ? body.message : 'The handler failed';
  const remoteClass =
    typeof errorClass === 'string'
      ? errorClass
      : typeof body.errorClass === 'string'
        ? body.errorClass
        : 'Error';
  return new RemoteHandlerError(message, remoteClass, {
    remoteCode: isCode(body.code) ? body.code : undefined,
    status: isStatus(body.status) ? body.status : undefined,
    details: body.details,
  });
}

/** The JSON of `body` with its details, or undefined when they cannot go (why: to `omitted`). */
function withDetails(body: RemoteErrorBody, omitted?: (why: string) => void): string | undefined {
  let details: string | undefined;
  try {
    details = JSON.stringify(body.details);
  } catch (error) {
    omitted?.(`they cannot be written as JSON (${(error as Error).message})`);
    return undefined;
  }
  if (details === undefined) return undefined; // a function, a symbol: nothing to send
  if (Buffer.byteLength(details) > MAX_DETAILS_BYTES) {
    omitted?.(`they are over ${MAX_DETAILS_BYTES} bytes of JSON`);
    return undefined;
  }
  return JSON.stringify(body);
}

/** Where `code`, `status` and `details` are read: an `RpcException`'s own error object, or `error`. */
function typeSource(error: unknown): unknown {
  if (!(error instanceof RpcException)) return error;
  try {
    const inner = error.getError();
    return typeof inner === 'object' && inner !== null ? inner : error;
  } catch {
    return error;
  }
}

/** `source[key]` when `source` is an object, undefined if reading it throws (a getter, a proxy). */
function read(source: unknown, key: 'code' | 'status' | 'details'): unknown {
  if ((typeof source !== 'object' && typeof source !== 'function') || source === null) {
    return undefined;
  }
  try {
    return (source as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function safeStatus(error: HttpException): unknown {
  try {
    return error.getStatus();
  } catch {
    return undefined;
  }
}

/** An `HttpException`'s response when it is an object (a string one is already the message). */
function responseObject(error: HttpException): unknown {
  try {
    const response = error.getResponse();
    return typeof response === 'object' && response !== null ? response : undefined;
  } catch {
    return undefined;
  }
}

function isCode(value: unknown): value is string | number {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
}

function isStatus(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}
