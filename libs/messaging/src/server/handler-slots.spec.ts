import { HandlerSlots } from './handler-slots';

describe('HandlerSlots', () => {
  it('gives slots at once up to the limit, then in arrival order as they are released', async () => {
    const slots = new HandlerSlots(2);
    expect(slots.take()).toBeUndefined();
    expect(slots.take()).toBeUndefined();
    const order: string[] = [];
    const third = slots.take()?.then(() => order.push('third'));
    const fourth = slots.take()?.then(() => order.push('fourth'));
    expect(third).toBeDefined();
    expect(fourth).toBeDefined();
    await Promise.resolve();
    expect(order).toEqual([]);

    slots.release(); // to the third
    await third;
    expect(order).toEqual(['third']);
    slots.release(); // to the fourth
    await fourth;
    expect(order).toEqual(['third', 'fourth']);

    // Two running, none waiting: two releases free both, and the next two take theirs at once.
    slots.release();
    slots.release();
    expect(slots.take()).toBeUndefined();
    expect(slots.take()).toBeUndefined();
    expect(slots.take()).toBeInstanceOf(Promise);
  });
});
