import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { catchError, type Observable, throwError } from 'rxjs';
import { MessageContext } from '../context/message-context';

/**
 * Keeps the error a handler or a pipe threw on its `MessageContext`. Nest's exception filters turn
 * unknown errors into `{ status: 'error', message: 'Internal server error' }`, which would hide an
 * `UnrecoverableError` or a validation failure from the retry policy. Added by `@Consume`.
 */
@Injectable()
export class ThrownErrorRecorder implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const ctx = context.switchToRpc().getContext<unknown>();
    return next.handle().pipe(
      catchError((error: unknown) => {
        if (ctx instanceof MessageContext) ctx.thrown = error;
        return throwError(() => error);
      }),
    );
  }
}
