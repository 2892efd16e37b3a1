import type { ChannelModel } from 'amqplib';

/** The parts of amqplib 2's connection that write to the socket (not its public API: checked). */
interface AmqplibWriter {
  connection?: {
    stream?: { cork?: () => void; uncork?: () => void };
    muxer?: { _readIncoming?: () => void };
  };
}

/**
 * Makes one connection write what it has to send in one system call per turn instead of one per
 * frame group. amqplib queues each publish, ack and reply on its channel's buffer and its multiplexer
 * then writes them to the socket one `write()` each, in one callback; Node writes each at once, so a
 * busy connection makes a `writev`-able run of small writes into as many system calls (on a
 * virtual machine the biggest single cost of a message: a quarter of the client's CPU in request/reply).
 * Corking the socket around that callback hands the run to the kernel in one `writev`: the same
 * bytes, in the same order, at the same moment.
 *
 * Returns false, changing nothing, when the amqplib in use is not shaped as expected (another major
 * version): messages then go out as amqplib writes them.
 */
export function coalesceWrites(conn: ChannelModel): boolean {
  const { connection } = conn as unknown as AmqplibWriter;
  const socket = connection?.stream;
  const muxer = connection?.muxer;
  const readIncoming = muxer?._readIncoming;
  if (
    !socket ||
    !muxer ||
    typeof readIncoming !== 'function' ||
    typeof socket.cork !== 'function' ||
    typeof socket.uncork !== 'function'
  ) {
    return false;
  }
  const cork = socket.cork.bind(socket);
  const uncork = socket.uncork.bind(socket);
  muxer._readIncoming = function coalesced(this: unknown): void {
    cork();
    try {
      readIncoming.call(this);
    } finally {
      uncork();
    }
  };
  return true;
}
