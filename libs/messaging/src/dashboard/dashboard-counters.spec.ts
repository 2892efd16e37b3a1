import { MessagingInstruments } from '../observability/messaging-metrics';
import { DashboardCounters } from './dashboard-counters';

describe('DashboardCounters', () => {
  it('counts settled deliveries by outcome, in flight, and the rate over the last minute', () => {
    let now = 1_000_000;
    const counters = new DashboardCounters(() => now);
    const instruments = new MessagingInstruments(undefined);
    expect(instruments.enabled).toBe(false);
    const remove = instruments.addSink(counters);
    expect(instruments.enabled).toBe(true);

    const delivery = { handler: 'Orders.place', topic: 'orders.placed', redelivered: false };
    instruments.running('Orders.place', 1);
    expect(counters.of('Orders.place').inFlight).toBe(1);
    instruments.settled(delivery, 'ack', 0.01);
    instruments.settled(delivery, 'retry', 0.01);
    now += 30_000;
    instruments.settled(delivery, 'dead-letter', 0.01, 'handler-error');
    instruments.running('Orders.place', -1);
    expect(counters.of('Orders.place')).toEqual({
      handled: 3,
      retried: 1,
      deadLettered: 1,
      inFlight: 0,
      ratePerSecond: 3 / 60,
    });
    now += 45_000; // the first two are over a minute old
    expect(counters.of('Orders.place').ratePerSecond).toBe(1 / 60);
    expect(counters.of('Other.handler')).toEqual({
      handled: 0,
      retried: 0,
      deadLettered: 0,
      inFlight: 0,
      ratePerSecond: 0,
    });

    remove();
    expect(instruments.enabled).toBe(false);
  });

  it("sits beside the app's own sink: both see each measurement", () => {
    const seen: string[] = [];
    const own = {
      increment: (metric: string) => void seen.push(metric),
      observe: () => undefined,
      set: () => undefined,
    };
    const counters = new DashboardCounters();
    const instruments = new MessagingInstruments(own);
    instruments.addSink(counters);
    instruments.settled({ handler: 'A.b', topic: 't', redelivered: false }, 'ack', 0.01);
    expect(seen).toEqual(['consumed']);
    expect(counters.of('A.b').handled).toBe(1);
  });
});
