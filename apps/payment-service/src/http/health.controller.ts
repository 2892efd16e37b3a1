import { Controller, Get, HttpStatus, Res } from '@nestjs/common';
import { type MessagingHealth, MessagingHealthService } from '@app/messaging';

/** The part of the platform's response object this controller uses (express, fastify). */
interface StatusSettable {
  status(code: number): unknown;
}

/** `GET /health`: 200 while the broker is connected, 503 otherwise, with the details as body. */
@Controller('health')
export class HealthController {
  constructor(private readonly health: MessagingHealthService) {}

  @Get()
  check(@Res({ passthrough: true }) res: StatusSettable): MessagingHealth {
    const health = this.health.check();
    res.status(health.status === 'up' ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
    return health;
  }
}
