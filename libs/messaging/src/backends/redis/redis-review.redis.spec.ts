/**
 * Review of the Redis performance rework (issue 19, `git log 5817d8b..perf-redis`): one failing test
 * per defect found. Each fails on the code as merged (9da0fcd) and passes once its defect is fixed
 * (the fixes suggested in the review were checked by patching them in: tests 1, 4 and 5).
 */
import { redisClient } from '../../testing/redis.fixture';
import { ROUTE_RECHECK_MS } from './redis-routes';
import { PUBLISH_SCRIPT } from './redis-scripts';
import { ACK, routeSpec, textMessage, useRedisBackends } from './redis-spec.fixture';

const { prefix, backend, names } = useRedisBackends('review');
const redis = redisClient();

afterAll(async () => {
  await redis.quit();
});

describe('Redis rework review', () => {
  it('3. keeps the order of publishes when the periodic routing recheck meets NOSCRIPT', async () => {
    const { service, topic } = names();
    const b = await backend();
    await b.subscribe(routeSpec(service, [topic]), async () => ACK);
    await b.publish(textMessage({ topic }, 'm0'), { mandatory: true }); // the route is cached
    // A second later, with Redis's script cache empty (a restart with its data, a failover, SCRIPT
    // FLUSH): the next publish rechecks the route with the script, the following ones take the
    // fast path. NOSCRIPT is produced by a SHA Redis does not know, as after a restart.
    const realNow = Date.now.bind(Date);
    const clock = jest
      .spyOn(Date, 'now')
      .mockImplementation(() => realNow() + ROUTE_RECHECK_MS + 500);
    const realSha = PUBLISH_SCRIPT.sha;
    Object.defineProperty(PUBLISH_SCRIPT, 'sha', { value: '0'.repeat(40) });
    try {
      await Promise.all(
        ['m1', 'm2', 'm3'].map((body) =>
          b.publish(textMessage({ topic }, body), { mandatory: true }),
        ),
      );
    } finally {
      Object.defineProperty(PUBLISH_SCRIPT, 'sha', { value: realSha });
      clock.mockRestore();
    }
    const entries = await redis.xrange(`${prefix}:t:${topic}`, '-', '+');
    const bodies = entries.map(([, fields]) => fields[fields.indexOf('body') + 1]);
    // Observed: ['m0', 'm2', 'm3', 'm1']: m1's EVAL left after the NOSCRIPT reply, behind m2 and m3.
    expect(bodies).toEqual(['m0', 'm1', 'm2', 'm3']);
  });
});
