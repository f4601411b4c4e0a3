import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

// docs/capabilities.md is generated from the backends' capability exports; it must match what the
// generator produces from the code as it is now (run the script without --check to update it).
it('docs/capabilities.md is up to date with the backends capability objects', () => {
  const script = join(__dirname, '../scripts/capabilities-table.mjs');
  let out = '';
  let ok = true;
  try {
    out = execFileSync(process.execPath, [script, '--check'], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    ok = false;
    out = String((e as { stderr?: string }).stderr ?? e);
  }
  expect(ok, out).toBe(true);
});
