/**
 * A TCP proxy to the Redis of the specs, for the tests that must make Redis unreachable, or lose the
 * reply of one command, without touching the shared server.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { REDIS_URL } from '../../testing/redis.fixture';

/** See {@link redisProxy}. */
export interface RedisProxy {
  readonly port: number;
  /** The connections cut by {@link RedisProxy.cutAfterCommandWith} so far. */
  readonly cuts: number;
  /** Drops every connection and refuses new ones (Redis unreachable). */
  cut(): void;
  /** Accepts connections again (after {@link RedisProxy.cut}). */
  restore(): Promise<void>;
  /**
   * Drops the connection that sends a command containing `text` when Redis's next reply on it
   * arrives: the command ran, its reply is lost.
   */
  cutAfterCommandWith(text: string): void;
  /** Closes the proxy and every connection. */
  stop(): void;
}

/**
 * A TCP proxy to the local Redis: `cut()` drops every connection and refuses new ones (Redis
 * unreachable); `cutAfterCommandWith(text)` drops the connection that sends a command containing
 * `text` when Redis's next reply on it arrives (so the command ran, unanswered).
 */
export async function redisProxy(): Promise<RedisProxy> {
  const target = new URL(REDIS_URL);
  const sockets = new Set<Socket>();
  let trigger: string | undefined;
  let cuts = 0;
  const onConnection = (client: Socket) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    sockets.add(client).add(upstream);
    let victim = false;
    client.on('data', (chunk) => {
      if (trigger !== undefined && chunk.includes(trigger)) {
        trigger = undefined;
        victim = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!victim) return void client.write(chunk);
      victim = false;
      cuts++;
      client.destroy();
      upstream.destroy();
    });
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  };
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    const listening = createServer(onConnection);
    await new Promise<void>((resolve) => listening.listen(port, '127.0.0.1', resolve));
    port = (listening.address() as { port: number }).port;
    server = listening;
  };
  const stop = () => {
    server?.close();
    server = undefined;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  await listen();
  return {
    port,
    get cuts() {
      return cuts;
    },
    cut: stop,
    restore: async () => {
      if (!server) await listen();
    },
    cutAfterCommandWith: (text) => (trigger = text),
    stop,
  };
}
