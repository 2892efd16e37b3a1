/**
 * What the AsyncAPI document says of the broker the system runs on: AsyncAPI 3.0's bindings where it
 * defines them for that broker, an `x-messaging` extension where it does not.
 *
 * | broker   | channel                                                   | receive operation          | send operation                    |
 * | -------- | --------------------------------------------------------- | -------------------------- | --------------------------------- |
 * | RabbitMQ | `amqp`: the topic exchange (`is: routingKey`) or the named queue (`is: queue`) | `amqp`: `ack: true` | `amqp`: `deliveryMode: 2`, `mandatory` |
 * | Redis    | `x-messaging`: the stream (AsyncAPI's `redis` bindings are reserved, empty) | -  | -                                 |
 * | NATS     | `x-messaging`: the JetStream stream and subject (its `nats` channel binding is reserved) | - (its `queue` is a core queue group; a route consumes through durable JetStream consumers) | - |
 *
 * A reply goes to the address its request carries (`replyTo`): RabbitMQ's direct reply-to, a Redis
 * pub/sub channel of the requester, a NATS inbox subject.
 */
import { RedisKeys } from '../backends/redis/redis-topology';
import { natsNames } from '../backends/nats/nats-topology';

/** What the bindings read of a channel (`asyncapi-channels.ts` has the rest). */
interface ChannelName {
  readonly kind: 'topic' | 'queue' | 'reply';
  readonly name: string;
}

/**
 * The broker of the document, and the names its backend was given (the same values as the backend's
 * options: `new AmqpBackend({ exchange })`, `new RedisStreamsBackend({ prefix })`, ...).
 */
export type AsyncApiBroker =
  | {
      readonly kind: 'amqp';
      /** The backend's topic exchange. @default 'messaging' */
      readonly exchange?: string;
      /** The virtual host of the broker URL. @default '/' */
      readonly vhost?: string;
    }
  | {
      readonly kind: 'redis' | 'nats';
      /** The backend's key (Redis) or subject and stream (NATS) prefix. @default 'messaging' */
      readonly prefix?: string;
    };

/** Version of the AsyncAPI AMQP bindings written (the one AsyncAPI 3.0 defines). */
export const AMQP_BINDING_VERSION = '0.3.0';

const DEFAULT_NAME = 'messaging';

/** The broker-specific fields of each part of the document. */
export interface BrokerBindings {
  /** Fields of a topic or queue channel (a reply channel has none: it has no fixed address). */
  channel(c: ChannelName): Record<string, unknown>;
  /** Fields of a `receive` operation. */
  receive(): Record<string, unknown>;
  /** Fields of a `send` operation; `mandatory`: a message no queue receives is refused. */
  send(mandatory: boolean): Record<string, unknown>;
  /** Where a reply goes, for the `reply.address` of an operation. */
  readonly replyTo: string;
}

/** The bindings of `broker`. */
export function brokerBindings(broker: AsyncApiBroker): BrokerBindings {
  switch (broker.kind) {
    case 'amqp':
      return amqpBindings(broker.exchange ?? DEFAULT_NAME, broker.vhost ?? '/');
    case 'redis': {
      const keys = new RedisKeys(broker.prefix ?? DEFAULT_NAME);
      return {
        channel: (c) => ({
          'x-messaging': {
            broker: 'redis',
            stream: c.kind === 'queue' ? keys.queue(c.name) : keys.topic(c.name),
          },
        }),
        receive: () => ({}),
        send: () => ({}),
        replyTo: 'a pub/sub channel of the requesting instance, named in the request',
      };
    }
    case 'nats': {
      const names = natsNames(broker.prefix ?? DEFAULT_NAME);
      return {
        channel: (c) => ({
          'x-messaging': {
            broker: 'nats',
            stream: names.messages,
            subject: c.kind === 'queue' ? names.queueSubject(c.name) : names.topicSubject(c.name),
          },
        }),
        receive: () => ({}),
        send: () => ({}),
        replyTo: 'an inbox subject of the requesting instance (_INBOX.…), named in the request',
      };
    }
  }
}

function amqpBindings(exchange: string, vhost: string): BrokerBindings {
  return {
    channel: (c) => ({
      bindings: {
        amqp:
          c.kind === 'queue'
            ? { is: 'queue', queue: { name: c.name, vhost }, bindingVersion: AMQP_BINDING_VERSION }
            : {
                is: 'routingKey',
                exchange: {
                  name: exchange,
                  type: 'topic',
                  durable: true,
                  autoDelete: false,
                  vhost,
                },
                bindingVersion: AMQP_BINDING_VERSION,
              },
      },
    }),
    receive: () => ({ bindings: { amqp: { ack: true, bindingVersion: AMQP_BINDING_VERSION } } }),
    send: (mandatory) => ({
      bindings: { amqp: { deliveryMode: 2, mandatory, bindingVersion: AMQP_BINDING_VERSION } },
    }),
    replyTo: "RabbitMQ's direct reply-to of the requesting channel, in the request's reply_to",
  };
}
