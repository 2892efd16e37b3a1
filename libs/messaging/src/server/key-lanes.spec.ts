import { KeyLanes } from './key-lanes';

describe('KeyLanes', () => {
  it('lets one holder per key in, the next ones in the order they came, keys independent', async () => {
    const lanes = new KeyLanes();
    const order: string[] = [];
    const enter = (key: string, label: string) => lanes.enter(key).then(() => order.push(label));
    const a1 = enter('a', 'a1');
    const a2 = enter('a', 'a2');
    const a3 = enter('a', 'a3');
    const b1 = enter('b', 'b1');
    await Promise.all([a1, b1]);
    expect(order).toEqual(['a1', 'b1']);
    lanes.leave('a');
    await a2;
    expect(order).toEqual(['a1', 'b1', 'a2']);
    lanes.leave('a');
    await a3;
    lanes.leave('a');
    lanes.leave('b');
    expect(order).toEqual(['a1', 'b1', 'a2', 'a3']);
    expect(lanes.size).toBe(0);
  });

  it('frees a lane nobody waits for, so the next enter is at once', async () => {
    const lanes = new KeyLanes();
    await lanes.enter('k');
    expect(lanes.size).toBe(1);
    lanes.leave('k');
    expect(lanes.size).toBe(0);
    let entered = false;
    void lanes.enter('k').then(() => (entered = true));
    await Promise.resolve();
    expect(entered).toBe(true);
  });
});
