import { Controller, UsePipes, ValidationPipe } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { Consume, MessageContext } from '@app/messaging';
import { PaymentFailedDto, PaymentSucceededDto } from './payment-events.dto';
import { OrdersService } from './orders.service';

/**
 * Payment events from payment-service. A payload that fails validation is dead-lettered at once;
 * other failures (the repository is down) are retried with the module's policy.
 */
@Controller()
@UsePipes(new ValidationPipe({ whitelist: true, transform: true }))
export class PaymentEventsController {
  constructor(private readonly orders: OrdersService) {}

  @Consume('payment.succeeded')
  async onPaymentSucceeded(
    @Payload() event: PaymentSucceededDto,
    @Ctx() ctx: MessageContext,
  ): Promise<void> {
    await this.orders.markPaid(event.orderId, event.paymentId, ctx.attempt);
  }

  @Consume('payment.failed')
  async onPaymentFailed(
    @Payload() event: PaymentFailedDto,
    @Ctx() ctx: MessageContext,
  ): Promise<void> {
    await this.orders.markPaymentFailed(event.orderId, event.reason ?? 'declined', ctx.attempt);
  }
}
