/**
 * A small JSON parser that remembers where each value starts (line and column), so that errors
 * in a `--tree` file can name both the line and the field: `line 4, column 12: Unexpected token`
 * or `line 9: nodes[3].parent: node 7 does not exist`. `JSON.parse` in Node 20 does not say
 * where a syntax error is, and it loses positions entirely once parsing succeeds.
 */
import { CanopyError } from '@canopy/core';

export interface Located {
  line: number;
  column: number;
}

/** Parsed value plus a map from field path (`nodes[3].parent`) to where its value starts. */
export interface LocatedJson {
  value: unknown;
  locations: Map<string, Located>;
}

export class JsonSyntaxError extends CanopyError {
  constructor(
    readonly line: number,
    readonly column: number,
    detail: string,
    source: string,
  ) {
    super('bad-json', `${source}: line ${line}, column ${column}: ${detail}`);
  }
}

export function parseLocatedJson(text: string, source = 'JSON'): LocatedJson {
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const locations = new Map<string, Located>();

  const here = (): Located => ({ line, column: i - lineStart + 1 });
  const err = (detail: string): never => {
    const at = here();
    throw new JsonSyntaxError(at.line, at.column, detail, source);
  };
  const describe = (): string => (i >= text.length ? 'Unexpected end of input' : `Unexpected token ${JSON.stringify(text[i])}`);

  const skipWs = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x0a) {
        i++;
        line++;
        lineStart = i;
      } else if (c === 0x20 || c === 0x09 || c === 0x0d) {
        i++;
      } else break;
    }
  };

  const parseString = (): string => {
    // text[i] === '"'
    i++;
    let out = '';
    for (;;) {
      if (i >= text.length) err('Unterminated string');
      const c = text[i];
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\n') err('Unterminated string (newline inside a string)');
      if (c === '\\') {
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && e in simple) {
          out += simple[e];
          i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else {
          i++;
          err('Bad escape in string');
        }
      } else {
        out += c;
        i++;
      }
    }
  };

  const parseValue = (path: string): unknown => {
    skipWs();
    locations.set(path, here());
    if (i >= text.length) err('Unexpected end of input');
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: Record<string, unknown> = {};
      skipWs();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        skipWs();
        if (text[i] !== '"') err(`${describe()}, expected a "quoted" property name`);
        const key = parseString();
        skipWs();
        if (text[i] !== ':') err(`${describe()}, expected ':' after property name ${JSON.stringify(key)}`);
        i++;
        obj[key] = parseValue(path === '' ? key : `${path}.${key}`);
        skipWs();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        err(`${describe()}, expected ',' or '}' in an object`);
      }
    }
    if (c === '[') {
      i++;
      const arr: unknown[] = [];
      skipWs();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(parseValue(`${path}[${arr.length}]`));
        skipWs();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        err(`${describe()}, expected ',' or ']' in an array`);
      }
    }
    if (c === '"') return parseString();
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 64));
    if (m && m[0].length > 0) {
      i += m[0].length;
      return Number(m[0]);
    }
    for (const [word, val] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return val;
      }
    }
    return err(describe());
  };

  const value = parseValue('');
  skipWs();
  if (i < text.length) err(`${describe()} after the end of the JSON value`);
  return { value, locations };
}
