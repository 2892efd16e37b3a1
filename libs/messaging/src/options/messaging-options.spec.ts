import { MessagingConfigError } from '../errors/messaging.errors';
import { DEFAULT_RETRY } from '../retry/retry-options';
import { resolveMessagingOptions } from './messaging-options';

describe('resolveMessagingOptions', () => {
  it('applies every default', () => {
    const resolved = resolveMessagingOptions({ service: 'payments' });
    expect(resolved).toMatchObject({
      service: 'payments',
      retry: DEFAULT_RETRY,
      deadLetter: true,
      concurrency: 10,
      shutdownTimeoutMs: 10_000,
      requestTimeoutMs: 5_000,
      allowUnroutable: false,
      durableRequests: false,
      consumers: true,
      requestContext: 'auto',
      tracing: 'auto',
      codec: { maxBodyBytes: 1024 * 1024, compressAboveBytes: false, maxJsonDepth: 64 },
    });
  });

  it('merges nested retry options over the defaults', () => {
    const resolved = resolveMessagingOptions({
      service: 's',
      retry: { backoff: { initialDelayMs: 50 } },
    });
    expect(resolved.retry).toEqual({
      maxAttempts: 5,
      backoff: { ...DEFAULT_RETRY.backoff, initialDelayMs: 50 },
    });
  });

  it.each([
    [{}, /'service' must name this service/],
    [{ service: 'has space' }, /'service' must name this service/],
    [{ service: 's', backend: {} }, /must be a BrokerBackend instance/],
    [
      { service: 's', retry: { maxAttempts: 0 } },
      /retry.maxAttempts must be a whole number from 1/,
    ],
    [
      { service: 's', retry: { backoff: { jitter: 2 } } },
      /retry.backoff.jitter must be a number from 0 to 1/,
    ],
    [
      { service: 's', retry: { backoff: { initialDelayMs: 5000, maxDelayMs: 100 } } },
      /maxDelayMs \(100\) is below initialDelayMs \(5000\)/,
    ],
    [{ service: 's', concurrency: 1.5 }, /concurrency must be a whole number/],
    [
      { service: 's', health: { consumerGraceMs: -1 } },
      /health.consumerGraceMs must be a whole number/,
    ],
    [
      { service: 's', health: { graceMs: 5 } },
      /health has no option 'graceMs'. Valid options: 'consumerGraceMs'/,
    ],
    [
      { service: 's', metrics: { inc: () => 1 } },
      /'metrics' must be a MessagingMetrics \(increment, observe, set\)/,
    ],
    [{ service: 's', tracing: 'on' }, /tracing must be true, false or \{ spans: /],
    [{ service: 's', tracing: { spans: 'both' } }, /tracing.spans must be 'auto'/],
    [{ service: 's', tracing: { span: 'auto' } }, /tracing has no option 'span'/],
    [{ service: 's', requestContext: 1 }, /requestContext must be true, false or 'auto'/],
    [{ service: 's', requestContext: 'on' }, /requestContext must be true, false or 'auto'/],
    [{ service: 's', durableRequests: 'yes' }, /durableRequests must be true or false/],
    [{ service: 's', consumers: 0 }, /consumers must be true or false/],
    [{ service: 's', deadLetter: 'yes' }, /deadLetter must be true or false/],
    [
      { service: 's', retries: { maxAttempts: 2 } },
      /forRoot\(\) has no option 'retries'; did you mean 'retry'\?/,
    ],
    [
      { service: 's', retry: { maxAttempt: 2 } },
      /retry has no option 'maxAttempt'; did you mean 'maxAttempts'\?/,
    ],
    [
      { service: 's', retry: { backoff: { initialDelay: 5 } } },
      /retry.backoff has no option 'initialDelay'; did you mean 'initialDelayMs'\?/,
    ],
    [{ service: 's', codec: { gzip: true } }, /codec has no option 'gzip'. Valid options: /],
    [
      { service: 's', codec: { maxBodyBytes: -1 } },
      /codec.maxBodyBytes must be a whole number from 1/,
    ],
  ])('rejects %j with a message that says how to fix it', (options, message) => {
    expect(() => resolveMessagingOptions(options as never)).toThrow(MessagingConfigError);
    expect(() => resolveMessagingOptions(options as never)).toThrow(message);
  });
});
