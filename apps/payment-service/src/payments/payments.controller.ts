import { Controller, Get, Param, Query } from '@nestjs/common';
import { type Charge, SimulatedPaymentGateway } from './payment-gateway';
import { type PaymentView, PaymentsService } from './payments.service';

/** What payment-service knows about payments, for operators and tests (SPEC section 4). */
@Controller('payments')
export class PaymentsController {
  constructor(
    private readonly payments: PaymentsService,
    private readonly gateway: SimulatedPaymentGateway,
  ) {}

  /** `GET /payments?orderId=<id>`: the charges the gateway made for that order (all without it). */
  @Get()
  charges(@Query('orderId') orderId?: string): Promise<Charge[]> {
    return this.gateway.chargesOf(orderId);
  }

  /** `GET /payments/<orderId>`: the recorded outcome, the charge count and the deliveries handled. */
  @Get(':orderId')
  get(@Param('orderId') orderId: string): Promise<PaymentView> {
    return this.payments.view(orderId);
  }
}
