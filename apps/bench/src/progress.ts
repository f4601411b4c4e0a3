/**
 * Progress on stderr: a one-line bar redrawn in place on a TTY; plain lines in CI, when stderr is
 * not a TTY, or with `--quiet` (then only one line per finished step).
 */
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Whether stderr is an interactive terminal (a bar is drawn only then). */
  isTTY: boolean;
  /** Terminal width for the bar. */
  columns?: number;
}

export function processIo(): Io {
  return {
    out: (s) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`),
    err: (s) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
    isTTY: !!process.stderr.isTTY && !process.env.CI,
    columns: process.stderr.columns,
  };
}

export class Progress {
  private done = 0;
  private drawn = false;
  private readonly bar: boolean;
  private readonly t0 = performance.now();

  constructor(
    private readonly io: Io,
    private readonly total: number,
    quiet: boolean,
  ) {
    this.bar = io.isTTY && !quiet;
  }

  /** Redraw the bar for the step in progress (TTY only). */
  update(label: string, detail = ''): void {
    if (!this.bar) return;
    const width = Math.max(10, Math.min(30, (this.io.columns ?? 80) - 60));
    const frac = this.total > 0 ? this.done / this.total : 1;
    const filled = Math.round(frac * width);
    const secs = ((performance.now() - this.t0) / 1000).toFixed(0);
    const line = `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${this.done}/${this.total} ${secs}s  ${label} ${detail}`;
    process.stderr.write(`\r\x1b[2K${line.slice(0, (this.io.columns ?? 120) - 1)}`);
    this.drawn = true;
  }

  /** A step finished: advance; print a plain line when there is no bar. */
  step(line: string): void {
    this.done++;
    if (this.bar) this.update('');
    else this.io.err(`[${this.done}/${this.total}] ${line}`);
  }

  /** Print a message above the bar. */
  note(line: string): void {
    this.clear();
    this.io.err(line);
  }

  clear(): void {
    if (this.bar && this.drawn) {
      process.stderr.write('\r\x1b[2K');
      this.drawn = false;
    }
  }
}
