import { MessageFifo } from './message-fifo';

describe('MessageFifo', () => {
  it('keeps FIFO order across compactions and puts items back at the front', () => {
    const fifo = new MessageFifo<number>();
    for (let i = 0; i < 5000; i++) fifo.push(i);
    const out: number[] = [];
    for (let i = 0; i < 3000; i++) out.push(fifo.shift() as number);
    fifo.unshiftAll([-2, -1]);
    expect(fifo.size).toBe(2002);
    expect(fifo.peek()).toBe(-2);
    while (fifo.size > 0) out.push(fifo.shift() as number);
    expect(out.slice(0, 3)).toEqual([0, 1, 2]);
    expect(out.slice(2998, 3003)).toEqual([2998, 2999, -2, -1, 3000]);
    expect(out[out.length - 1]).toBe(4999);
    expect(fifo.shift()).toBeUndefined();
    expect(fifo.peek()).toBeUndefined();
  });
});
