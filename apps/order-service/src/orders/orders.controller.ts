import {
  Body,
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  Param,
  Post,
  UsePipes,
  ValidationPipe,
} from '@nestjs/common';
import { CreateOrderDto } from './create-order.dto';
import type { Order } from './order';
import { OrdersService } from './orders.service';

/** The HTTP API of order-service (pinned in SPEC section 4). */
@Controller('orders')
@UsePipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true }))
export class OrdersController {
  constructor(private readonly orders: OrdersService) {}

  /** 201 with the `PENDING` order; 400 on bad input; 503 when `order.created` could not be published. */
  @Post()
  @HttpCode(HttpStatus.CREATED)
  place(@Body() dto: CreateOrderDto): Promise<Order> {
    return this.orders.place(dto);
  }

  @Get()
  list(): Promise<Order[]> {
    return this.orders.list();
  }

  /** The order, or 404. */
  @Get(':id')
  get(@Param('id') id: string): Promise<Order> {
    return this.orders.get(id);
  }
}
