/**
 * JSON Schemas of payload classes for the AsyncAPI document, read from the class-validator
 * decorators on their properties: the contract that Nest's `ValidationPipe` enforces on arrival, so
 * the document cannot drift from it. No second set of decorators.
 *
 * | decorator                                        | schema                                   |
 * | ------------------------------------------------ | ---------------------------------------- |
 * | `IsString`, `IsNumber`, `IsInt`, `IsBoolean`, `IsArray`, `IsObject` | `type`                |
 * | `IsEmail`, `IsUUID`, `IsUrl`, `IsDateString`, `IsISO8601`, `IsDate` | `type` and `format`   |
 * | `IsNotEmpty` (on a string), `MinLength`, `MaxLength`, `Length`      | `minLength`, `maxLength` |
 * | `Min`, `Max`, `IsPositive`, `IsNegative`         | `minimum`, `maximum`, exclusive bounds   |
 * | `Matches`                                        | `pattern` (the flags are not kept)       |
 * | `IsIn`, `IsEnum`                                 | `enum`                                   |
 * | `ArrayMinSize`, `ArrayMaxSize`, `ArrayNotEmpty`, `ArrayUnique` | `minItems`, `maxItems`, `uniqueItems` |
 * | `IsOptional`, `ValidateIf`                       | not in `required`                        |
 * | `ValidateNested` (+ class-transformer's `Type`)  | a `$ref` to the nested class             |
 * | `{ each: true }`                                 | the constraint applies to `items`        |
 *
 * Any other decorator adds no constraint (never an error). class-validator and class-transformer
 * are optional peers: each is loaded only when a document is generated, and without it a class is
 * just an object.
 */

/** What this file reads of class-validator's `ValidationMetadata`. */
interface ValidationMetadata {
  /** `customValidation`, `nestedValidation`, `conditionalValidation`, `isDefined`, ... */
  readonly type: string;
  /** The constraint of a `customValidation` (`isString`, `min`, ...). */
  readonly name?: string;
  readonly propertyName: string;
  readonly constraints?: readonly unknown[];
  /** Applies to each item of an array. */
  readonly each?: boolean;
}

/** A JSON Schema (draft 07, as AsyncAPI 3.0 uses) as a plain object. */
export type JsonSchema = { readonly [keyword: string]: unknown };

/** A message body as the document describes it. */
export interface MessagePayload {
  /** What the body is: its class name, or `String` / `Buffer` for text and bytes. */
  readonly name: string;
  /** How the library encodes it (`MessageCodec`). */
  readonly contentType: string;
  /** For a class, a `$ref` to its entry in `components.schemas`. */
  readonly schema: JsonSchema;
}

// The content types of MessageCodec: a string is sent as text, a Buffer as bytes, the rest as JSON.
const JSON_TYPE = 'application/json';
const BUILT_IN_PAYLOADS = new Map<unknown, MessagePayload>([
  [String, { name: 'String', contentType: 'text/plain', schema: { type: 'string' } }],
  [
    Buffer,
    {
      name: 'Buffer',
      contentType: 'application/octet-stream',
      schema: { type: 'string', format: 'binary' },
    },
  ],
  [Number, { name: 'Number', contentType: JSON_TYPE, schema: { type: 'number' } }],
  [Boolean, { name: 'Boolean', contentType: JSON_TYPE, schema: { type: 'boolean' } }],
]);

/** Types that name no class of ours: an interface (erased to `Object`), a promise, a collection. */
const NOT_A_PAYLOAD_CLASS = new Set<unknown>([
  Object,
  Function,
  Promise,
  Array,
  Date,
  Map,
  Set,
  Symbol,
  BigInt,
]);

/** What a property's TypeScript type (`design:type`) says. */
const DESIGN_TYPES = new Map<unknown, JsonSchema>([
  [String, { type: 'string' }],
  [Number, { type: 'number' }],
  [Boolean, { type: 'boolean' }],
  [Array, { type: 'array' }],
  [Date, { type: 'string', format: 'date-time' }],
]);

type Keywords = Record<string, unknown>;
const num = (value: unknown, keyword: string): Keywords =>
  typeof value === 'number' && Number.isFinite(value) ? { [keyword]: value } : {};
const DATE_TIME = { type: 'string', format: 'date-time' };

/** What each class-validator constraint (by its name) says, as JSON Schema keywords. */
const CONSTRAINTS: Readonly<Record<string, (args: readonly unknown[]) => Keywords>> = {
  isString: () => ({ type: 'string' }),
  isNumber: () => ({ type: 'number' }),
  isInt: () => ({ type: 'integer' }),
  isBoolean: () => ({ type: 'boolean' }),
  isArray: () => ({ type: 'array' }),
  isObject: () => ({ type: 'object' }),
  isEmail: () => ({ type: 'string', format: 'email' }),
  isUrl: () => ({ type: 'string', format: 'uri' }),
  isUuid: () => ({ type: 'string', format: 'uuid' }),
  isDateString: () => DATE_TIME,
  isIso8601: () => DATE_TIME,
  isDate: () => DATE_TIME,
  minLength: ([min]) => num(min, 'minLength'),
  maxLength: ([max]) => num(max, 'maxLength'),
  isLength: ([min, max]) => ({ ...num(min, 'minLength'), ...num(max, 'maxLength') }),
  min: ([min]) => num(min, 'minimum'),
  max: ([max]) => num(max, 'maximum'),
  isPositive: () => ({ exclusiveMinimum: 0 }),
  isNegative: () => ({ exclusiveMaximum: 0 }),
  matches: ([pattern]) =>
    pattern instanceof RegExp || typeof pattern === 'string'
      ? { pattern: pattern instanceof RegExp ? pattern.source : pattern }
      : {},
  isIn: ([values]) => (Array.isArray(values) ? { enum: [...values] } : {}),
  isEnum: ([entity, values]) => ({
    enum: Array.isArray(values) ? [...values] : enumValues(entity),
  }),
  arrayMinSize: ([min]) => num(min, 'minItems'),
  arrayMaxSize: ([max]) => num(max, 'maxItems'),
  arrayNotEmpty: () => ({ minItems: 1 }),
  arrayUnique: () => ({ uniqueItems: true }),
};

/** Keyword order of the emitted schemas: fixed, so the document is the same on every run. */
const KEYWORD_ORDER = [
  'type',
  'format',
  'enum',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'exclusiveMinimum',
  'maximum',
  'exclusiveMaximum',
  'minItems',
  'maxItems',
  'uniqueItems',
  'items',
  '$ref',
];

type Class = abstract new (...args: never[]) => unknown;

/**
 * The schemas of the payload classes met so far, named by class name (`OrderCreatedDto`; a second,
 * different class of the same name becomes `OrderCreatedDto_2`), for `components.schemas`.
 */
export class SchemaRegistry {
  private readonly named = new Map<string, JsonSchema>();
  private readonly names = new Map<Class, string>();

  /** The payload a parameter (or return) type describes; `undefined` when it names no type. */
  payloadOf(type: unknown): MessagePayload | undefined {
    const builtIn = BUILT_IN_PAYLOADS.get(type);
    if (builtIn) return builtIn;
    if (!isPayloadClass(type)) return undefined;
    return { name: type.name, contentType: JSON_TYPE, schema: this.refOf(type) };
  }

  /** Every schema registered, sorted by name. */
  schemas(): Record<string, JsonSchema> {
    return Object.fromEntries([...this.named].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  private refOf(type: Class): JsonSchema {
    let name = this.names.get(type);
    if (name === undefined) {
      name = type.name || 'Anonymous';
      for (let n = 2; this.named.has(name); n++) name = `${type.name}_${n}`;
      // Named before its properties are read, so a class that contains itself is one $ref.
      this.names.set(type, name);
      this.named.set(name, {});
      this.named.set(name, this.classSchema(type));
    }
    return { $ref: `#/components/schemas/${name}` };
  }

  private classSchema(type: Class): JsonSchema {
    const byProperty = new Map<string, ValidationMetadata[]>();
    for (const metadata of validationMetadataOf(type)) {
      const list = byProperty.get(metadata.propertyName) ?? [];
      byProperty.set(metadata.propertyName, [...list, metadata]);
    }
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const [property, metadata] of byProperty) {
      const designType: unknown = Reflect.getMetadata('design:type', type.prototype, property);
      properties[property] = this.propertySchema(type, property, designType, metadata);
      if (isRequired(metadata)) required.push(property);
    }
    return {
      type: 'object',
      ...(byProperty.size > 0 ? { properties } : {}),
      ...(required.length > 0 ? { required } : {}),
    };
  }

  private propertySchema(
    owner: Class,
    property: string,
    designType: unknown,
    metadata: readonly ValidationMetadata[],
  ): JsonSchema {
    const own: Keywords = { ...DESIGN_TYPES.get(designType) };
    const items: Keywords = {};
    let notEmpty = false;
    for (const m of metadata) {
      if (m.type === 'nestedValidation') {
        const nested = nestedClassOf(owner, property) ?? designType;
        if (!isPayloadClass(nested)) continue;
        const ref = this.refOf(nested);
        if (m.each || designType === Array) Object.assign(items, ref);
        else return ref;
        continue;
      }
      if (m.name === 'isNotEmpty') notEmpty = true;
      const keywords = (m.name !== undefined && CONSTRAINTS[m.name]?.(m.constraints ?? [])) || {};
      merge(m.each ? items : own, keywords);
    }
    if (notEmpty && own.type === 'string' && own.minLength === undefined) own.minLength = 1;
    if (Object.keys(items).length > 0) Object.assign(own, { type: 'array', items: ordered(items) });
    return ordered(own);
  }
}

/** Adds `keywords` to `into`; an integer stays an integer when `IsNumber` is there too. */
function merge(into: Keywords, keywords: Keywords): void {
  for (const [keyword, value] of Object.entries(keywords)) {
    if (keyword === 'type' && into.type === 'integer' && value === 'number') continue;
    into[keyword] = value;
  }
}

function ordered(schema: Keywords): JsonSchema {
  const known = KEYWORD_ORDER.filter((k) => schema[k] !== undefined);
  const others = Object.keys(schema)
    .filter((k) => !KEYWORD_ORDER.includes(k))
    .sort();
  return Object.fromEntries([...known, ...others].map((k) => [k, schema[k]]));
}

/** Required unless `@IsOptional()` or `@ValidateIf()` (which skip validation), or `@IsDefined()`. */
function isRequired(metadata: readonly ValidationMetadata[]): boolean {
  if (metadata.some((m) => m.type === 'isDefined')) return true;
  return !metadata.some((m) => m.type === 'conditionalValidation');
}

function isPayloadClass(type: unknown): type is Class {
  return (
    typeof type === 'function' &&
    type.prototype !== undefined &&
    !NOT_A_PAYLOAD_CLASS.has(type) &&
    !BUILT_IN_PAYLOADS.has(type)
  );
}

/** A TypeScript enum's values (a numeric enum also maps its values back to its keys). */
function enumValues(entity: unknown): unknown[] {
  if (typeof entity !== 'object' || entity === null) return [];
  const record = entity as Record<string, unknown>;
  return Object.keys(record)
    .filter((key) => !/^\d+$/.test(key) || typeof record[record[key] as string] !== 'number')
    .map((key) => record[key]);
}

interface ClassValidatorModule {
  getMetadataStorage(): {
    getTargetValidationMetadatas(
      target: Class,
      schema: string,
      always: boolean,
      strictGroups: boolean,
    ): ValidationMetadata[];
  };
}

interface TypeMetadataStorage {
  findTypeMetadata(target: Class, property: string): { typeFunction(): unknown } | undefined;
}

function validationMetadataOf(type: Class): ValidationMetadata[] {
  const classValidator = optionalRequire<ClassValidatorModule>('class-validator');
  return (
    classValidator?.getMetadataStorage().getTargetValidationMetadatas(type, '', false, false) ?? []
  );
}

/** The class of `@Type(() => Nested)` (class-transformer), needed for arrays of nested objects. */
function nestedClassOf(owner: Class, property: string): unknown {
  const storage = optionalRequire<{ defaultMetadataStorage: TypeMetadataStorage }>(
    'class-transformer/cjs/storage',
  );
  return storage?.defaultMetadataStorage.findTypeMetadata(owner, property)?.typeFunction();
}

function optionalRequire<T>(id: string): T | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(id) as T;
  } catch {
    return undefined;
  }
}
