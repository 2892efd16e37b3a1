import 'reflect-metadata';
import { Type } from 'class-transformer';
import {
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsDateString,
  IsEmail,
  IsEnum,
  IsHexColor,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsNumber,
  IsOptional,
  IsPositive,
  IsString,
  IsUUID,
  Length,
  Matches,
  Max,
  MaxLength,
  Min,
  Validate,
  ValidateNested,
  type ValidatorConstraintInterface,
} from 'class-validator';
import { type JsonSchema, SchemaRegistry } from './payload-schema';

class OrderCreated {
  @IsString() @IsNotEmpty() @MaxLength(200) orderId!: string;
  @IsNumber({ allowNaN: false }) @IsPositive() amount!: number;
  @IsOptional() @IsString() note?: string;
}

enum Color {
  Red = 'red',
  Blue = 'blue',
}
enum Level {
  Low,
  High,
}

class Ranges {
  @IsInt() @Min(1) @Max(9) count!: number;
  @IsNumber() @IsInt() whole!: number;
  @Matches(/^tok_[a-z]+$/i) token!: string;
  @IsIn(['a', 'b']) letter!: string;
  @IsEnum(Color) color!: Color;
  @IsEnum(Level) level!: Level;
  @Length(2, 5) code!: string;
  @IsEmail() email!: string;
  @IsUUID('4') id!: string;
  @IsDateString() at!: string;
  @IsBoolean() flag!: boolean;
}

class Line {
  @IsString() sku!: string;
}

class Basket {
  @ValidateNested() @Type(() => Line) first!: Line;
  @IsArray() @ValidateNested({ each: true }) @Type(() => Line) @ArrayMinSize(1) lines!: Line[];
  @IsString({ each: true }) tags!: string[];
}

class Tree {
  @IsString() name!: string;
  @IsOptional() @ValidateNested({ each: true }) @Type(() => Tree) children?: Tree[];
}

class Even implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    return typeof value === 'number' && value % 2 === 0;
  }
}

class Exotic {
  @IsHexColor() color!: string;
  @Validate(Even) even!: number;
}

class Undecorated {
  name!: string;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

describe('SchemaRegistry', () => {
  it.each<[string, new () => unknown, Record<string, JsonSchema>]>([
    [
      'strings, numbers, required and optional',
      OrderCreated,
      {
        OrderCreated: {
          type: 'object',
          properties: {
            orderId: { type: 'string', minLength: 1, maxLength: 200 },
            amount: { type: 'number', exclusiveMinimum: 0 },
            note: { type: 'string' },
          },
          required: ['orderId', 'amount'],
        },
      },
    ],
    [
      'ranges, patterns, enums and formats',
      Ranges,
      {
        Ranges: {
          type: 'object',
          properties: {
            count: { type: 'integer', minimum: 1, maximum: 9 },
            whole: { type: 'integer' },
            token: { type: 'string', pattern: '^tok_[a-z]+$' },
            letter: { type: 'string', enum: ['a', 'b'] },
            color: { type: 'string', enum: ['red', 'blue'] },
            level: { type: 'number', enum: [0, 1] },
            code: { type: 'string', minLength: 2, maxLength: 5 },
            email: { type: 'string', format: 'email' },
            id: { type: 'string', format: 'uuid' },
            at: { type: 'string', format: 'date-time' },
            flag: { type: 'boolean' },
          },
          required: [
            'count',
            'whole',
            'token',
            'letter',
            'color',
            'level',
            'code',
            'email',
            'id',
            'at',
            'flag',
          ],
        },
      },
    ],
    [
      'nested objects and arrays of them (ValidateNested + Type), each: true',
      Basket,
      {
        Basket: {
          type: 'object',
          properties: {
            first: ref('Line'),
            lines: { type: 'array', minItems: 1, items: ref('Line') },
            tags: { type: 'array', items: { type: 'string' } },
          },
          required: ['first', 'lines', 'tags'],
        },
        Line: { type: 'object', properties: { sku: { type: 'string' } }, required: ['sku'] },
      },
    ],
    [
      'a class that contains itself',
      Tree,
      {
        Tree: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            children: { type: 'array', items: ref('Tree') },
          },
          required: ['name'],
        },
      },
    ],
    [
      'decorators it does not know add no constraint',
      Exotic,
      {
        Exotic: {
          type: 'object',
          properties: { color: { type: 'string' }, even: { type: 'number' } },
          required: ['color', 'even'],
        },
      },
    ],
    ['a class without validation decorators', Undecorated, { Undecorated: { type: 'object' } }],
  ])('%s', (_case, type, schemas) => {
    const registry = new SchemaRegistry();
    expect(registry.payloadOf(type)).toEqual({
      name: type.name,
      contentType: 'application/json',
      schema: ref(type.name),
    });
    expect(registry.schemas()).toEqual(schemas);
    // Keys in a fixed order, so the generated document is byte-for-byte stable.
    expect(JSON.stringify(registry.schemas())).toBe(JSON.stringify(schemas));
  });

  it.each<[string, unknown, object | undefined]>([
    ['String: text', String, { contentType: 'text/plain', schema: { type: 'string' } }],
    [
      'Buffer: bytes',
      Buffer,
      { contentType: 'application/octet-stream', schema: { type: 'string', format: 'binary' } },
    ],
    ['Number: JSON', Number, { contentType: 'application/json', schema: { type: 'number' } }],
    ['an interface (Object): nothing known', Object, undefined],
    ['an async handler (Promise): nothing known', Promise, undefined],
    ['no type at all', undefined, undefined],
  ])('payload of %s', (_case, type, payload) => {
    const found = new SchemaRegistry().payloadOf(type);
    if (payload === undefined) expect(found).toBeUndefined();
    else expect(found).toMatchObject(payload);
  });

  it('names a second, different class of the same name Name_2, and a class met again once', () => {
    const Other = (() => {
      class OrderCreated {
        @IsString() other!: string;
      }
      return OrderCreated;
    })();
    const registry = new SchemaRegistry();
    expect(registry.payloadOf(OrderCreated)?.schema).toEqual(ref('OrderCreated'));
    expect(registry.payloadOf(Other)?.schema).toEqual(ref('OrderCreated_2'));
    expect(registry.payloadOf(OrderCreated)?.schema).toEqual(ref('OrderCreated'));
    expect(Object.keys(registry.schemas())).toEqual(['OrderCreated', 'OrderCreated_2']);
  });
});
