import type { ArgumentMetadata, PipeTransform, Type } from '@nestjs/common';
import { PIPES_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { RpcParamtype } from '@nestjs/microservices/enums/rpc-paramtype.enum';
import type { BatchOptions } from '../decorators/batch-options';
import type { ConsumeDefinition } from '../decorators/consume.decorator';

type PipeRef = PipeTransform | Type<PipeTransform>;

/** `@Payload()` as Nest's parameter keys spell it (`'3:0'`). */
const PAYLOAD = String(RpcParamtype.PAYLOAD);

/** A `@Payload()` parameter as Nest records it (`ROUTE_ARGS_METADATA`). */
interface ParamRecord {
  readonly index: number;
  readonly data?: string;
  readonly pipes?: readonly PipeRef[];
}

/**
 * The pipes of a batch handler's payload, run on each item. Nest runs a handler's pipes once, on
 * the value of `@Payload()`, which for a batch is the whole array: a `ValidationPipe` lets it through
 * unchecked (its metatype is `Array`), and one bad item would fail them all. So before the handler
 * is called, each item goes through, in Nest's order: `batch.itemPipes`, the class's `@UsePipes`, the
 * method's `@UsePipes`, the `@Payload()` parameter's pipes; with `batch.itemType` as the metatype.
 * An item a pipe rejects is settled alone with that error (a validation error: dead-lettered).
 *
 * Limits: the app's global pipes (`useGlobalPipes`) are not reachable here: give them again as
 * `batch.itemPipes`. A pipe given as a class is created with `new` (no injection). Nest still runs the
 * same pipes once on the array of transformed items afterwards, as for any handler.
 */
export class BatchItemPipes {
  private constructor(
    private readonly pipes: readonly PipeTransform[],
    private readonly metadata: ArgumentMetadata,
  ) {}

  /** The item pipes of a batch handler, or undefined when it has none. */
  static of(definition: ConsumeDefinition, batch: BatchOptions): BatchItemPipes | undefined {
    const { owner, key } = definition.method ?? {};
    const method = owner && key !== undefined ? (owner as Type).prototype?.[key] : undefined;
    const param = owner && key !== undefined ? payloadParam(owner, key) : undefined;
    const refs: PipeRef[] = [
      ...(batch.itemPipes ?? []),
      ...pipesOf(owner),
      ...pipesOf(method),
      ...(param?.pipes ?? []),
    ];
    if (refs.length === 0) return undefined;
    const pipes = refs.map((ref) => (typeof ref === 'function' ? new ref() : ref));
    const metadata = {
      type: PAYLOAD,
      metatype: batch.itemType,
      data: param?.data,
    } as unknown as ArgumentMetadata;
    return new BatchItemPipes(pipes, metadata);
  }

  /** `item` through every pipe; rejects with the first pipe's error. */
  async apply(item: unknown): Promise<unknown> {
    let value = item;
    for (const pipe of this.pipes) value = await pipe.transform(value, this.metadata);
    return value;
  }
}

function pipesOf(target: object | undefined): readonly PipeRef[] {
  if (target === undefined) return [];
  return (Reflect.getMetadata(PIPES_METADATA, target) as PipeRef[] | undefined) ?? [];
}

function payloadParam(owner: object, key: string | symbol): ParamRecord | undefined {
  const params = (Reflect.getMetadata(ROUTE_ARGS_METADATA, owner, key) ?? {}) as Record<
    string,
    ParamRecord
  >;
  const entry = Object.entries(params).find(([k]) => k.split(':')[0] === PAYLOAD);
  return entry?.[1];
}
