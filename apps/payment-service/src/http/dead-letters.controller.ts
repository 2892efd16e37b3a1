import {
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  NotFoundException,
  Param,
  Post,
} from '@nestjs/common';
import { type DeadLetterEntry, DeadLetterService } from '@app/messaging';

/** A dead letter as JSON: everything but the raw body bytes, which `payload` shows decoded. */
export type DeadLetterView = Omit<DeadLetterEntry, 'body'>;

/** payment-service's dead letters: list them, replay one once its cause is fixed. */
@Controller('dead-letters')
export class DeadLettersController {
  constructor(private readonly deadLetters: DeadLetterService) {}

  @Get()
  async list(): Promise<DeadLetterView[]> {
    const letters = await this.deadLetters.list();
    return letters.map(({ body: _body, ...rest }) => rest);
  }

  /** 200 `{ id, replayed: true }`; 404 when there is no dead letter with that id. */
  @Post(':id/replay')
  @HttpCode(HttpStatus.OK)
  async replay(@Param('id') id: string): Promise<{ id: string; replayed: true }> {
    if (!(await this.deadLetters.replay(id)))
      throw new NotFoundException(`No dead letter with id ${id}`);
    return { id, replayed: true };
  }
}
