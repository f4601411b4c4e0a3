/** Every error Canopy raises for bad input. `code` is stable for programs; the message names the problem. */
export class CanopyError extends Error {
  override name = 'CanopyError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function fail(code: string, message: string): never {
  throw new CanopyError(code, message);
}
