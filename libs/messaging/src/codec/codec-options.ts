import { checkInteger, checkOptionsObject } from '../errors/config-checks';
import type { CodecSettings } from './message-codec';

/** Body encoding options of `MessagingModule.forRoot({ codec })`. */
export interface CodecOptions {
  /**
   * Largest body published or accepted, counted before compression (what a handler gets): the same
   * limit on both sides. @default 1048576 (1 MiB)
   */
  maxBodyBytes?: number;
  /** Compress (gzip) bodies of at least this many bytes; `false` never compresses. @default false */
  compressAboveBytes?: number | false;
  /** Deepest nesting accepted in an incoming JSON body. @default 64 */
  maxJsonDepth?: number;
}

export const DEFAULT_CODEC: CodecSettings = {
  maxBodyBytes: 1024 * 1024,
  compressAboveBytes: false,
  maxJsonDepth: 64,
};

const CODEC_KEYS = ['maxBodyBytes', 'compressAboveBytes', 'maxJsonDepth'] as const;

/** Merges codec options over the defaults; throws a `MessagingConfigError` naming a bad field. */
export function resolveCodec(codec: CodecOptions | undefined, where: string): CodecSettings {
  const options = checkOptionsObject(codec, CODEC_KEYS, where);
  if (options === undefined) return DEFAULT_CODEC;
  const compress = options.compressAboveBytes;
  return {
    maxBodyBytes: checkInteger(
      options.maxBodyBytes,
      DEFAULT_CODEC.maxBodyBytes,
      `${where}.maxBodyBytes`,
      1,
    ),
    compressAboveBytes:
      compress === undefined
        ? DEFAULT_CODEC.compressAboveBytes
        : compress === false
          ? false
          : checkInteger(compress, 0, `${where}.compressAboveBytes`, 0),
    maxJsonDepth: checkInteger(
      options.maxJsonDepth,
      DEFAULT_CODEC.maxJsonDepth,
      `${where}.maxJsonDepth`,
      1,
      10_000,
    ),
  };
}
