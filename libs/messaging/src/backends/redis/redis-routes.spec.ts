import { RedisRoutes, ROUTE_RECHECK_MS } from './redis-routes';

describe('RedisRoutes', () => {
  it('knows a target once the routing script confirmed it', () => {
    const routes = new RedisRoutes();
    expect(routes.knownTopic('orders', 0)).toBeUndefined();
    routes.confirmTopic('orders', 'p:t:orders', 0);
    expect(routes.knownTopic('orders', 10)).toMatchObject({ stream: 'p:t:orders' });
    expect(routes.knownQueue('orders', 10)).toBeUndefined(); // topics and queues apart
    routes.forgetTopic('orders');
    expect(routes.knownTopic('orders', 10)).toBeUndefined();
  });

  it(`makes one publish check a target again after ${ROUTE_RECHECK_MS} ms, the others keep it meanwhile`, () => {
    const routes = new RedisRoutes();
    routes.confirmQueue('q', 'p:q:q', 0);
    expect(routes.knownQueue('q', ROUTE_RECHECK_MS - 1)).toBeDefined();
    // Due: the first publish runs the script ...
    expect(routes.knownQueue('q', ROUTE_RECHECK_MS)).toBeUndefined();
    // ... and the next ones do not wait for it.
    expect(routes.knownQueue('q', ROUTE_RECHECK_MS + 1)).toBeDefined();
    routes.confirmQueue('q', 'p:q:q', ROUTE_RECHECK_MS + 2);
    expect(routes.knownQueue('q', 2 * ROUTE_RECHECK_MS + 1)).toBeDefined();
    // The check found no group: forgotten, so every publish runs the script until one reaches a group.
    expect(routes.knownQueue('q', 3 * ROUTE_RECHECK_MS)).toBeUndefined();
    routes.forgetQueue('q');
    expect(routes.knownQueue('q', 3 * ROUTE_RECHECK_MS + 1)).toBeUndefined();
  });

  it('matches topics against the bindings read last, wildcards included', () => {
    const routes = new RedisRoutes();
    expect(routes.snapshot).toBeUndefined();
    const snapshot = routes.setBindings('7', [
      'billing.orders',
      '["order.*"]',
      'audit.all',
      '["#"]',
      'ship.created',
      '["order.created","parcel.#"]',
      'broken',
      'not json',
      'empty',
      '[]',
    ]);
    expect(routes.snapshot).toBe(snapshot);
    expect(snapshot.generation).toBe('7');
    expect(snapshot.queuesOf('order.created')).toEqual([
      'billing.orders',
      'audit.all',
      'ship.created',
    ]);
    expect(snapshot.queuesOf('order.created.v2')).toEqual(['audit.all']);
    expect(snapshot.queuesOf('parcel')).toEqual(['audit.all', 'ship.created']);
    // Remembered per topic: the same answer without matching again.
    expect(snapshot.queuesOf('order.created')).toBe(snapshot.queuesOf('order.created'));
  });
});
