import type { ChannelModel } from 'amqplib';
import { coalesceWrites } from './amqp-wire';

/** An amqplib 2 connection as `coalesceWrites` sees it: a socket and a multiplexer writing to it. */
function fakeConnection() {
  const log: string[] = [];
  const socket = {
    corked: 0,
    cork() {
      this.corked++;
      log.push('cork');
    },
    uncork() {
      this.corked--;
      log.push('uncork');
    },
  };
  const muxer = {
    fail: false,
    _readIncoming(this: { fail: boolean }) {
      log.push(socket.corked > 0 ? 'write corked' : 'write');
      if (this.fail) throw new Error('write failed');
    },
  };
  const conn = { connection: { stream: socket, muxer } } as unknown as ChannelModel;
  return { conn, socket, muxer, log };
}

describe('coalesceWrites', () => {
  it("corks the socket around each turn of amqplib's multiplexer, even one that throws", () => {
    const { conn, muxer, socket, log } = fakeConnection();
    expect(coalesceWrites(conn)).toBe(true);
    muxer._readIncoming();
    muxer.fail = true;
    expect(() => muxer._readIncoming()).toThrow('write failed');
    expect(log).toEqual(['cork', 'write corked', 'uncork', 'cork', 'write corked', 'uncork']);
    expect(socket.corked).toBe(0);
  });

  it.each([
    ['no connection', {}],
    ['no multiplexer', { connection: { stream: { cork() {}, uncork() {} } } }],
    ['a socket that cannot cork', { connection: { stream: {}, muxer: { _readIncoming() {} } } }],
  ])('changes nothing on an amqplib of another shape (%s)', (_, shape) => {
    const before = JSON.stringify(shape);
    expect(coalesceWrites(shape as unknown as ChannelModel)).toBe(false);
    expect(JSON.stringify(shape)).toBe(before);
  });
});
