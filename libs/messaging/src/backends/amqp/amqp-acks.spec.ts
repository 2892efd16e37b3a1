import type { Message } from 'amqplib';
import { AckBatcher, type AckChannel } from './amqp-acks';

/** A channel that records the frames it would send. */
function recorder(): { channel: AckChannel; frames: string[]; flushes: Array<() => void> } {
  const frames: string[] = [];
  const tag = (m: Message): number => m.fields.deliveryTag;
  const channel: AckChannel = {
    ack: (m, allUpTo) => frames.push(`ack ${tag(m)}${allUpTo ? ' multiple' : ''}`),
    nack: (m, allUpTo, requeue) =>
      frames.push(`nack ${tag(m)}${allUpTo ? ' multiple' : ''}${requeue ? ' requeue' : ''}`),
  };
  return { channel, frames, flushes: [] };
}

function batcher() {
  const r = recorder();
  const acks = new AckBatcher(r.channel, (flush) => r.flushes.push(flush));
  const turnEnds = (): void => r.flushes.splice(0).forEach((flush) => flush());
  return { acks, frames: r.frames, turnEnds };
}

describe('AckBatcher', () => {
  it('acks a run of settled deliveries with one multiple ack at the end of the turn', () => {
    const { acks, frames, turnEnds } = batcher();
    for (const tag of [1, 2, 3, 4]) acks.ack(tag);
    expect(frames).toEqual([]);
    turnEnds();
    expect(frames).toEqual(['ack 4 multiple']);
  });

  it('never covers a delivery still in flight, nor lets it hold back the acks of later ones', () => {
    const { acks, frames, turnEnds } = batcher();
    acks.ack(1);
    acks.ack(3);
    acks.ack(4);
    turnEnds();
    // 2 is still in flight: 3 and 4 go alone, so they free their prefetch slots now.
    expect(frames).toEqual(['ack 1 multiple', 'ack 3', 'ack 4']);
    acks.ack(2);
    acks.ack(5);
    turnEnds();
    // 3 and 4 are acked already: the multiple ack names 5, the highest still outstanding.
    expect(frames).toEqual(['ack 1 multiple', 'ack 3', 'ack 4', 'ack 5 multiple']);
  });

  it('sends a requeue at once and never names an already settled tag in a multiple ack', () => {
    const { acks, frames, turnEnds } = batcher();
    acks.ack(1);
    acks.requeue(3);
    acks.ack(2);
    turnEnds();
    // 3 was nacked: the multiple ack names 2, the highest tag still outstanding.
    expect(frames).toEqual(['nack 3 requeue', 'ack 2 multiple']);
    acks.requeue(4);
    turnEnds();
    expect(frames).toEqual(['nack 3 requeue', 'ack 2 multiple', 'nack 4 requeue']);
  });

  it('acks at once when asked, alone while an earlier delivery is in flight', () => {
    const { acks, frames, turnEnds } = batcher();
    acks.ack(1);
    acks.ackNow(2);
    expect(frames).toEqual(['ack 2 multiple']);
    acks.ackNow(4);
    expect(frames).toEqual(['ack 2 multiple', 'ack 4']);
    acks.ack(3);
    acks.ack(5);
    turnEnds();
    expect(frames).toEqual(['ack 2 multiple', 'ack 4', 'ack 5 multiple']);
    acks.ack(6);
    turnEnds();
    expect(frames).toEqual(['ack 2 multiple', 'ack 4', 'ack 5 multiple', 'ack 6 multiple']);
  });

  it('flushes what is owed on demand, once', () => {
    const { acks, frames } = batcher();
    acks.ack(1);
    acks.ack(2);
    acks.flush();
    acks.flush();
    expect(frames).toEqual(['ack 2 multiple']);
  });

  it('holds only the deliveries in flight and the acks owed, however long one delivery stays', () => {
    const { acks, frames, turnEnds } = batcher();
    for (let tag = 2; tag <= 10_001; tag++) {
      acks.ack(tag);
      if (tag % 100 === 0) turnEnds();
    }
    turnEnds();
    expect(acks.tracked).toBe(1);
    expect(frames).toHaveLength(10_000);
    expect(frames.every((frame) => !frame.endsWith('multiple'))).toBe(true);
    acks.ack(1);
    turnEnds();
    expect(frames.at(-1)).toBe('ack 1 multiple');
    expect(acks.tracked).toBe(0);
  });
});
