// pino logger: JSON by default, pretty on a TTY. Fixed field names; never a private key.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level = process.env.MESHD_LOG_LEVEL ?? 'info'): Logger {
  const pretty = process.stderr.isTTY && process.env.MESHD_LOG_FORMAT !== 'json';
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ['privateKey', '*.privateKey', 'private_key'], censor: '[redacted]' },
    },
    pretty
      ? pino.transport({ target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:HH:MM:ss.l' } })
      : pino.destination({ dest: 2, sync: true }),
  );
}
