import { Controller, Get, Param } from '@nestjs/common';
import { type PaymentView, PaymentsService } from './payments.service';

/** What payment-service knows about an order's payment (charges, deliveries), for operators and tests. */
@Controller('payments')
export class PaymentsController {
  constructor(private readonly payments: PaymentsService) {}

  @Get(':orderId')
  get(@Param('orderId') orderId: string): Promise<PaymentView> {
    return this.payments.view(orderId);
  }
}
