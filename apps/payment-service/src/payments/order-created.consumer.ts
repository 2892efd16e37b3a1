import { Controller, UsePipes, ValidationPipe } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { Consume, MessageContext } from '@app/messaging';
import { OrderCreatedDto } from './order-created.dto';
import { PaymentsService } from './payments.service';

/**
 * Consumes `order.created`. A transient gateway failure throws, so the library retries it with
 * backoff and dead-letters it after the last attempt; a decline is a normal outcome (`payment.failed`).
 */
@Controller()
@UsePipes(new ValidationPipe({ whitelist: true, transform: true }))
export class OrderCreatedConsumer {
  constructor(private readonly payments: PaymentsService) {}

  /**
   * Idempotent (the inbox): a message id is handled once; with a database the inbox entry, the ledger
   * row and the outcome's outbox message commit together. The message id is also the gateway's
   * idempotency key, so a crash between the charge and the commit never charges twice.
   */
  @Consume('order.created', { idempotent: true })
  async onOrderCreated(
    @Payload() order: OrderCreatedDto,
    @Ctx() ctx: MessageContext,
  ): Promise<void> {
    await this.payments.process(order, {
      attempt: ctx.attempt,
      correlationId: ctx.correlationId,
      messageId: ctx.messageId,
    });
  }
}
