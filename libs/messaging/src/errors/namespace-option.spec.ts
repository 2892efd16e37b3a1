import { resolveAmqpOptions } from '../backends/amqp/amqp-backend.options';
import { resolveNatsOptions } from '../backends/nats/nats-backend.options';
import { resolveRedisOptions } from '../backends/redis/redis-backend.options';

/** Each backend's resolver, its older name of `namespace`, and where it keeps the value. */
const BACKENDS = [
  [
    'AmqpBackend',
    'exchange',
    (o: object) => resolveAmqpOptions({ url: 'amqp://h', ...o }).exchange,
  ],
  ['RedisStreamsBackend', 'prefix', (o: object) => resolveRedisOptions(o).prefix],
  ['new NatsBackend()', 'prefix', (o: object) => resolveNatsOptions(o).prefix],
] as const;

describe('the namespace option, one name on every backend', () => {
  let emitWarning: jest.SpyInstance;
  beforeEach(() => {
    emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  });
  afterEach(() => emitWarning.mockRestore());

  it.each(BACKENDS)('%s takes namespace, quietly', (_where, _older, resolve) => {
    expect(resolve({ namespace: 'shop' })).toBe('shop');
    expect(resolve({})).toBe('messaging');
    expect(emitWarning).not.toHaveBeenCalled();
  });

  it.each(BACKENDS)(
    '%s still takes its older name %s, told deprecated once per process',
    (where, older, resolve) => {
      expect(resolve({ [older]: 'shop' })).toBe('shop');
      expect(resolve({ [older]: 'shop' })).toBe('shop');
      expect(resolve({ namespace: 'shop', [older]: 'shop' })).toBe('shop'); // the same: no conflict
      expect(emitWarning.mock.calls).toEqual([
        [
          `${where}: the option '${older}' is deprecated; name it 'namespace' (same value, same meaning).`,
          { type: 'DeprecationWarning', code: 'NEST_MESSAGING_NAMESPACE' },
        ],
      ]);
    },
  );

  it.each(BACKENDS)('%s refuses two different namespaces', (where, older, resolve) => {
    expect(() => resolve({ namespace: 'a', [older]: 'b' })).toThrow(
      `${where}: namespace "a" and ${older} "b" name two namespaces; give namespace only (${older} is its older name)`,
    );
  });
});
