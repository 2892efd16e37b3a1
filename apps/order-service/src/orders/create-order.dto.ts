import { IsNotEmpty, IsNumber, IsPositive, IsString, MaxLength } from 'class-validator';

/** Body of `POST /orders`. */
export class CreateOrderDto {
  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  customerId!: string;

  @IsNumber({ allowNaN: false, allowInfinity: false })
  @IsPositive()
  amount!: number;

  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  cardToken!: string;
}
