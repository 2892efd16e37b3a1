/** What a failed connection attempt is told to fix, and whether it is worth retrying. */
import { diagnoseConnectFailure } from './amqp-connect-errors';

const coded = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('diagnoseConnectFailure', () => {
  it.each<[string, unknown, string, RegExp, boolean]>([
    [
      'a host name that does not resolve',
      coded('ENOTFOUND', 'getaddrinfo ENOTFOUND rabit'),
      'amqp://app:s3cret@rabit:5672',
      /^The host name 'rabit' does not resolve: check the host in the URL\.$/,
      false,
    ],
    [
      'a port nothing listens on',
      coded('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5999'),
      'amqp://app:s3cret@127.0.0.1:5999',
      /^Nothing accepts connections on 127\.0\.0\.1:5999: check the port \(5672 for amqp:\/\/, 5671 for amqps:\/\/\) and that RabbitMQ is running there\.$/,
      false,
    ],
    [
      'a host that never answers',
      new Error('connect ETIMEDOUT'),
      'amqps://app:s3cret@10.1.2.3',
      /^No answer from 10\.1\.2\.3:5671 within 10000 ms: check the host and port, and that no firewall/,
      false,
    ],
    [
      'an HTTP port (the management UI)',
      new Error('Frame size 1213486160 exceeds maxFrameSize 67108864'),
      'amqp://app:s3cret@rabbit:15672',
      /^What answers on rabbit:15672 is not an AMQP broker: check the port .*15672 is the management web UI/,
      false,
    ],
    [
      'a plain connection to a TLS port',
      new Error('Socket closed abruptly during opening handshake'),
      'amqp://app:s3cret@rabbit:5671',
      /^rabbit:5671 closed the connection during the handshake: check amqp:\/\/ against amqps:\/\//,
      false,
    ],
    [
      'a refused login',
      new Error(
        'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED"',
      ),
      'amqp://app:s3cret@rabbit',
      /^RabbitMQ refused the login of user 'app': check the user name and password in the URL \(`rabbitmqctl authenticate_user app <password>`/,
      true,
    ],
    [
      "guest's login from another host",
      new Error('Handshake terminated by server: 403 (ACCESS-REFUSED)'),
      'amqp://rabbit.internal',
      /^RabbitMQ refused the login of user 'guest' \(RabbitMQ lets 'guest' log in from localhost only\)/,
      true,
    ],
    [
      'a vhost that does not exist or is not granted',
      new Error('Expected ConnectionOpenOk; got <ConnectionClose channel:0>'),
      'amqp://app:s3cret@rabbit:5672/orders',
      /^RabbitMQ refused to open virtual host 'orders' for user 'app': it does not exist, or the user has no permissions on it .* `rabbitmqctl add_vhost orders` .* `rabbitmqctl set_permissions -p orders app '\.\*' '\.\*' '\.\*'`, or fix the vhost in the URL\.$/,
      true,
    ],
    [
      'a vhost with characters a shell would read, percent-encoded in the URL',
      new Error('Expected ConnectionOpenOk; got <ConnectionClose channel:0>'),
      'amqp://my%20app:s3cret@rabbit/team%20a',
      /virtual host 'team a' for user 'my app'.* `rabbitmqctl add_vhost 'team a'` .* set_permissions -p 'team a' 'my app' /,
      true,
    ],
    [
      'the default vhost',
      new Error('Expected ConnectionOpenOk; got <ConnectionClose channel:0>'),
      'amqp://app:s3cret@rabbit',
      /virtual host '\/' .* `rabbitmqctl add_vhost \/`/,
      true,
    ],
    [
      'a certificate for another host',
      coded('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames"),
      'amqps://app:s3cret@10.0.0.5',
      /^The broker's TLS certificate is not for '10\.0\.0\.5': connect by a name the certificate lists, or set tls\.servername/,
      true,
    ],
    [
      'a certificate nobody vouched for',
      coded('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'),
      'amqps://app:s3cret@rabbit',
      /^The broker's TLS certificate is not trusted: pass the certificate of the authority that signed it in tls\.ca\.$/,
      true,
    ],
    [
      'anything else',
      new Error('something odd'),
      'amqp://app:s3cret@rabbit',
      /^Check the URL, and the broker's log\.$/,
      false,
    ],
  ])('%s', (_what, error, url, fix, permanent) => {
    const diagnosis = diagnoseConnectFailure(error, url, 10_000);
    expect(diagnosis.fix).toMatch(fix);
    expect(diagnosis.fix).not.toContain('s3cret');
    expect(diagnosis.permanent).toBe(permanent);
  });
});
