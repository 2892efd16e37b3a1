/**
 * A backend's broker client (`amqplib`, `ioredis`, the NATS packages) is an optional peer of the
 * package: loaded when the backend is constructed, so that an app on another backend never needs
 * it. When it is missing, the error names the command that installs it.
 */
import { MessagingConfigError } from '../errors/messaging.errors';

/**
 * Loads `packages` with `load` (Node's `require`), in order; when one is missing, throws a
 * {@link MessagingConfigError} that says what `backend` needs, the `npm install` command, and why
 * the load failed (first line).
 *
 * @example
 * const [amqplib] = loadBrokerClient('AmqpBackend', ['amqplib']) as [AmqplibModule];
 */
export function loadBrokerClient(
  backend: string,
  packages: readonly string[],
  load: (id: string) => unknown = require,
): unknown[] {
  try {
    return packages.map((id) => load(id));
  } catch (error) {
    const names = packages.map((id) => `'${id}'`).join(' and ');
    throw new MessagingConfigError(
      `${backend} needs the ${names} package${packages.length > 1 ? 's' : ''}: ` +
        `run \`npm install ${packages.join(' ')}\`.` +
        ` (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`,
      { cause: error },
    );
  }
}
