/**
 * The one rule for credentials in text that may be logged or thrown: every URL's user info is
 * replaced, whatever the scheme (`amqp://`, `redis://`, `nats://`, `tls://`, …) and whoever writes
 * the line (a backend's error, the CLI, a sample's configuration check).
 *
 * | in the text                         | becomes                      | why                                              |
 * | ----------------------------------- | ---------------------------- | ------------------------------------------------ |
 * | `amqp://app:s3cret@rabbit:5672`     | `amqp://app:***@rabbit:5672` | the user name helps, the password must not show  |
 * | `nats://s3cr3t-token@nats:4222`     | `nats://***@nats:4222`       | user info without `:` is a token (NATS, Redis)   |
 * | `amqp://u:p@ss/w:rd@h` (unencoded)  | `amqp://u:***@h`             | a password runs to the URL's last `@`            |
 * | `'redis://u:p w"d@h' is not valid`  | `'redis://u:***@h' is …`     | a quote or a space inside a password is its own  |
 * | `http://host/docs` (no `@`)         | unchanged                    | nothing to hide                                  |
 *
 * Too much is better than a secret: a `user@host` later in the same text after a URL with a
 * password is redacted with it. Only a password that holds the URL's end (a quote, a space, then
 * an `@` further on) can fool it, which is why a connection also masks its own secrets by value
 * where it has them (NATS's `maskSecrets`).
 */

/**
 * A URL's scheme, then either `user:` and a password up to the last `@` of the URL, or a token (no
 * `:`, `/`, space or quote) and its `@`. "The last `@`": the `@` after which no other comes before
 * the URL ends (a space, a quote, a comma or the end of the text).
 */
const USER_INFO =
  /([a-z][a-z0-9+.-]*:\/\/)(?:([^:/@\s'"`]*:).*?|[^:/@\s'"`]+)@(?=[^@\s'"`]*(?:[\s'"`,]|$))/gi;

/** `text` with the credentials of every URL in it replaced by `***` (see the table above). */
export function redactCredentials(text: string): string {
  return text.replace(
    USER_INFO,
    (_match, scheme: string, user: string | undefined) => `${scheme}${user ?? ''}***@`,
  );
}
