import { IsNotEmpty, IsOptional, IsString } from 'class-validator';

/** Body of `payment.succeeded`, published by payment-service. Unknown fields are ignored. */
export class PaymentSucceededDto {
  @IsString()
  @IsNotEmpty()
  orderId!: string;

  @IsString()
  @IsNotEmpty()
  paymentId!: string;
}

/** Body of `payment.failed`, published by payment-service on a business decline. */
export class PaymentFailedDto {
  @IsString()
  @IsNotEmpty()
  orderId!: string;

  @IsOptional()
  @IsString()
  reason?: string;
}
