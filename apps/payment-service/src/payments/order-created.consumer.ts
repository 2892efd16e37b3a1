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

  @Consume('order.created')
  async onOrderCreated(
    @Payload() order: OrderCreatedDto,
    @Ctx() ctx: MessageContext,
  ): Promise<void> {
    await this.payments.process(order, { attempt: ctx.attempt, correlationId: ctx.correlationId });
  }
}
