/** A command line that cannot be run as written: `sd-activate` says what is wrong and exits with 2, as getopt-style tools do. */
export class UsageError extends Error {
  readonly exitCode = 2;

  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
