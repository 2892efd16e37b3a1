import { Catch, type ExceptionFilter } from '@nestjs/common';
import { type Observable, throwError } from 'rxjs';

/**
 * The last exception filter of every `@Consume` handler: hands the error, unchanged, to
 * `MessagingServer`, whose retry policy decides what happens to the message (retry, dead-letter) and
 * logs it once. Without it Nest's default RPC filter would log every failed attempt with its stack and
 * replace the error by `{ status: 'error', message: 'Internal server error' }`, hiding an
 * `UnrecoverableError` or a validation failure from the policy. It also keeps class-level and global
 * filters written for HTTP (which expect a response object) away from message handlers.
 * Filters put on the handler method itself run first.
 */
@Catch()
export class MessageErrorFilter implements ExceptionFilter {
  catch(exception: unknown): Observable<never> {
    return throwError(() => exception);
  }
}
