import { IsNotEmpty, IsNumber, IsPositive, IsString } from 'class-validator';
import type { OrderToCharge } from './payment';

/** `order.created` as validated on arrival; unknown fields are stripped. */
export class OrderCreatedDto implements OrderToCharge {
  @IsString()
  @IsNotEmpty()
  orderId!: string;

  @IsString()
  customerId!: string;

  @IsNumber({ allowNaN: false, allowInfinity: false })
  @IsPositive()
  amount!: number;

  @IsString()
  @IsNotEmpty()
  cardToken!: string;
}
