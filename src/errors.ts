// Typed errors with a code, for bad config, bad CLI use and failed system calls.
export class MeshdError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'MeshdError';
  }
}

/** Bad configuration: the message names the file, line and key. */
export class ConfigError extends MeshdError {
  constructor(message: string) {
    super('ECONFIG', message);
  }
}

/** Bad command-line use (exit code 1). */
export class UsageError extends MeshdError {
  constructor(message: string) {
    super('EUSAGE', message);
  }
}
