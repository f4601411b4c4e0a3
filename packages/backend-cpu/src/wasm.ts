/**
 * The two inner loops of the CPU kernel as WebAssembly SIMD (f32x4), assembled here from a few
 * dozen instructions so the package ships no binary and needs no toolchain:
 *
 *   qk(rows, D4, nb, tokPtr, qPtr, scPtr, scStride, kOff)
 *     sc[r][t] = q_r · K[tok[t]] for r < rows, t < nb          (scores of a KV block)
 *   pv(rows, D4, nb, tokPtr, wPtr, wStride, cPtr, accPtr, vOff)
 *     acc_r = c[r] · acc_r + Σ_t w[r][t] · V[tok[t]]           (rescale + weighted V sum)
 *
 *   sm(rows, nb, t0, scPtr, scStride, visPtr, mPtr, lPtr, cPtr)
 *     scores → weights, running max/sum and rescale factors (online softmax; see smFunction)
 *
 * All pointers are byte offsets into one shared memory (imported as env.mem) that also holds the
 * f32 K and V pools; tok[t] is a token's byte offset into a pool (KV head 0; the head's offset is
 * added to kOff/vOff by the caller). D4 is the
 * head dim in bytes and must be a multiple of 64 (head dims divisible by 16): the loops consume
 * 16 floats (4 vectors) per step. WebAssembly has no exp instruction: sm evaluates a degree-6
 * polynomial for 2^f times 2^n built from exponent bits, four lanes at a time (relative error
 * ~4e-7 for x in [-10, 0], growing with |x| from rounding x·log2 e in f32: 3e-6 at x = -80, where
 * a weight is below 1e-34 of the row's largest).
 */

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const vec = (bytes: number[]) => [...uleb(bytes.length), ...bytes];
const str = (s: string) => vec([...new TextEncoder().encode(s)]);
const section = (id: number, bytes: number[]) => [id, ...vec(bytes)];

/** A function body builder with named locals (parameters first). */
class Fn {
  readonly code: number[] = [];
  private readonly index = new Map<string, number>();
  private readonly locals: number[] = [];
  constructor(
    readonly params: string[],
    locals: Array<[string, number]>,
  ) {
    params.forEach((p, i) => this.index.set(p, i));
    locals.forEach(([name, type], i) => {
      this.index.set(name, params.length + i);
      this.locals.push(type);
    });
  }
  private idx(name: string): number {
    const i = this.index.get(name);
    if (i === undefined) throw new Error(`wasm: unknown local ${name}`);
    return i;
  }
  get(n: string) {
    this.code.push(0x20, ...uleb(this.idx(n)));
    return this;
  }
  set(n: string) {
    this.code.push(0x21, ...uleb(this.idx(n)));
    return this;
  }
  op(...bytes: number[]) {
    this.code.push(...bytes);
    return this;
  }
  i32(v: number) {
    return this.op(0x41, ...sleb(v));
  }
  f32(v: number) {
    return this.op(0x43, ...new Uint8Array(new Float32Array([v]).buffer));
  }
  /** i32 address `base + idx * 4` on the stack. */
  addr4(base: string, idx: string) {
    return this.get(base).get(idx).i32(2).op(0x74, 0x6a);
  }
  /** `if (cond) then [else otherwise] end` with no result; `cond` pushes the i32. */
  ifElse(cond: () => void, then: () => void, otherwise?: () => void) {
    cond();
    this.op(0x04, 0x40);
    then();
    if (otherwise) {
      this.op(0x05);
      otherwise();
    }
    this.op(0x0b);
    return this;
  }
  simd(op: number, ...imm: number[]) {
    return this.op(0xfd, ...uleb(op), ...imm);
  }
  /** v128.load / v128.store with a constant byte offset. */
  vload(offset = 0) {
    return this.simd(0x00, 4, ...uleb(offset));
  }
  vstore(offset = 0) {
    return this.simd(0x0b, 4, ...uleb(offset));
  }
  vzero() {
    return this.simd(0x0c, ...new Array(16).fill(0));
  }
  /** f32x4.add / f32x4.mul: opcodes ≥ 128, which uleb encodes in two bytes. */
  add4() {
    return this.simd(0xe4);
  }
  mul4() {
    return this.simd(0xe6);
  }
  splat() {
    return this.simd(0x13);
  }
  lane(i: number) {
    return this.simd(0x1f, i);
  }
  /** `block loop <exit check> body br 0 end end`: `exit` pushes an i32 that ends the loop when true. */
  whileNot(exit: () => void, body: () => void) {
    this.op(0x02, 0x40, 0x03, 0x40);
    exit();
    this.op(0x0d, 1); // br_if 1: leave the block
    body();
    this.op(0x0c, 0, 0x0b, 0x0b); // br 0 (loop again), end loop, end block
    return this;
  }
  /** `loop body <continue check> br_if 0 end`: a do-while. */
  doWhile(body: () => void, again: () => void) {
    this.op(0x03, 0x40);
    body();
    again();
    this.op(0x0d, 0, 0x0b);
    return this;
  }
  encode(): number[] {
    const groups: number[] = [];
    for (const t of this.locals) groups.push(...uleb(1), t);
    return vec([...uleb(this.locals.length), ...groups, ...this.code, 0x0b]);
  }
}

const OFFS = [0, 16, 32, 48] as const;

/** Rows two at a time (`body(true)` for rows r and r + 1) while r + 1 < rows, then the odd last
 * row alone (`body(false)`); `r` and `rows` are locals of `f`. */
function emitRowPairs(f: Fn, body: (pair: boolean) => void): void {
  f.i32(0).set('r');
  f.whileNot(
    () => f.get('r').i32(1).op(0x6a).get('rows').op(0x4e),
    () => {
      body(true);
      f.get('r').i32(2).op(0x6a).set('r');
    },
  );
  f.ifElse(
    () => f.get('r').get('rows').op(0x48),
    () => body(false),
  );
}

/**
 * qk: rows go in pairs that share every K load (GQA rows of one KV head read the same tokens);
 * an odd last row goes alone. Tokens go four at a time (a q load serves four tokens; the four
 * dot products are reduced together by a transposing add), the last nb % 4 one at a time.
 */
function qkFunction(): Fn {
  const f = new Fn(
    ['rows', 'D4', 'nb', 'tokPtr', 'qPtr', 'scPtr', 'scStride', 'kOff'],
    [
      ['r', I32],
      ['t', I32],
      ['d', I32],
      ['qa', I32],
      ['qb', I32],
      ['sa', I32],
      ['sb', I32],
      ['ka', I32],
      ['k1', I32],
      ['k2', I32],
      ['k3', I32],
      ['a0', V128],
      ['a1', V128],
      ['a2', V128],
      ['a3', V128],
      ['b0', V128],
      ['b1', V128],
      ['b2', V128],
      ['b3', V128],
      ['k', V128],
      ['qv', V128],
      ['qw', V128],
    ],
  );
  const A = ['a0', 'a1', 'a2', 'a3'];
  const Bv = ['b0', 'b1', 'b2', 'b3'];
  const KA = ['ka', 'k1', 'k2', 'k3'];
  /** i8x16.shuffle picking f32 lanes (0–3: first operand, 4–7: second). */
  const shuffle32 = (lanes: number[]) => f.simd(0x0d, ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]));
  /** Horizontal sum of 4 accumulators, stored as f32 at `addr`. */
  const hsumStore = (acc: string[], addr: () => void) => {
    addr();
    f.get(acc[0]).get(acc[1]).add4().get(acc[2]).get(acc[3]).add4().add4().set(acc[0]);
    f.get(acc[0]).lane(0).get(acc[0]).lane(1).op(0x92).get(acc[0]).lane(2).get(acc[0]).lane(3).op(0x92).op(0x92);
    f.op(0x38, 2, 0);
  };
  /** [Σ acc0, Σ acc1, Σ acc2, Σ acc3] by a transposing add, stored as 4 f32 at `addr`. */
  const hsum4Store = (acc: string[], addr: () => void) => {
    addr();
    // u = (a0₀+a0₂, a0₁+a0₃, a1₀+a1₂, a1₁+a1₃), v likewise for a2, a3
    f.get(acc[0]).get(acc[1]);
    shuffle32([0, 1, 4, 5]);
    f.get(acc[0]).get(acc[1]);
    shuffle32([2, 3, 6, 7]);
    f.add4().set(acc[0]);
    f.get(acc[2]).get(acc[3]);
    shuffle32([0, 1, 4, 5]);
    f.get(acc[2]).get(acc[3]);
    shuffle32([2, 3, 6, 7]);
    f.add4().set(acc[2]);
    f.get(acc[0]).get(acc[2]);
    shuffle32([0, 2, 4, 6]);
    f.get(acc[0]).get(acc[2]);
    shuffle32([1, 3, 5, 7]);
    f.add4();
    f.vstore(0);
  };
  const rowSetup = () => {
    f.get('qPtr').get('r').get('D4').op(0x6c, 0x6a).set('qa'); // qa = qPtr + r * D4
    f.get('qa').get('D4').op(0x6a).set('qb');
    f.get('scPtr').get('r').get('scStride').op(0x6c, 0x6a).set('sa');
    f.get('sa').get('scStride').op(0x6a).set('sb');
  };
  /** Four tokens at once: each q vector load serves 4 tokens (and each K load 2 rows). */
  const fourTokens = (pair: boolean) => {
    KA.forEach((ka, j) => {
      // kaj = kOff + tok[t + j]
      f.get('kOff').addr4('tokPtr', 't').op(0x28, 2, 4 * j).op(0x6a).set(ka);
    });
    for (const x of pair ? [...A, ...Bv] : A) f.vzero().set(x);
    f.i32(0).set('d');
    f.doWhile(
      () => {
        f.get('qa').get('d').op(0x6a).vload(0).set('qv');
        if (pair) f.get('qb').get('d').op(0x6a).vload(0).set('qw');
        KA.forEach((ka, j) => {
          f.get(ka).get('d').op(0x6a).vload(0).set('k');
          f.get(A[j]).get('qv').get('k').mul4().add4().set(A[j]);
          if (pair) f.get(Bv[j]).get('qw').get('k').mul4().add4().set(Bv[j]);
        });
        f.get('d').i32(16).op(0x6a).set('d');
      },
      () => f.get('d').get('D4').op(0x48),
    );
    hsum4Store(A, () => f.addr4('sa', 't'));
    if (pair) hsum4Store(Bv, () => f.addr4('sb', 't'));
  };
  /** One token: 4 accumulators over 16-float steps. */
  const oneToken = (pair: boolean) => {
    f.get('kOff').addr4('tokPtr', 't').op(0x28, 2, 0).op(0x6a).set('ka');
    for (const x of pair ? [...A, ...Bv] : A) f.vzero().set(x);
    f.i32(0).set('d');
    f.doWhile(
      () => {
        OFFS.forEach((off, j) => {
          f.get('ka').get('d').op(0x6a).vload(off).set('k');
          f.get(A[j]).get('qa').get('d').op(0x6a).vload(off).get('k').mul4().add4().set(A[j]);
          if (pair) f.get(Bv[j]).get('qb').get('d').op(0x6a).vload(off).get('k').mul4().add4().set(Bv[j]);
        });
        f.get('d').i32(64).op(0x6a).set('d');
      },
      () => f.get('d').get('D4').op(0x48), // i32.lt_s
    );
    hsumStore(A, () => f.addr4('sa', 't'));
    if (pair) hsumStore(Bv, () => f.addr4('sb', 't'));
  };
  const body = (pair: boolean) => {
    rowSetup();
    f.i32(0).set('t');
    // while t + 4 <= nb: four tokens
    f.whileNot(
      () => f.get('t').i32(4).op(0x6a).get('nb').op(0x4a), // t + 4 > nb
      () => {
        fourTokens(pair);
        f.get('t').i32(4).op(0x6a).set('t');
      },
    );
    f.whileNot(
      () => f.get('t').get('nb').op(0x4e),
      () => {
        oneToken(pair);
        f.get('t').i32(1).op(0x6a).set('t');
      },
    );
  };
  emitRowPairs(f, body);
  return f;
}

/**
 * pv: rows in pairs sharing every V load. For each 16-float slice of the head dim, the pair's
 * accumulators (8 vectors) stay in registers while the block's tokens stream past.
 */
function pvFunction(): Fn {
  const f = new Fn(
    ['rows', 'D4', 'nb', 'tokPtr', 'wPtr', 'wStride', 'cPtr', 'accPtr', 'vOff'],
    [
      ['r', I32],
      ['t', I32],
      ['d', I32],
      ['aa', I32],
      ['ab', I32],
      ['wa', I32],
      ['wb', I32],
      ['va', I32],
      ['x0', V128],
      ['x1', V128],
      ['x2', V128],
      ['x3', V128],
      ['y0', V128],
      ['y1', V128],
      ['y2', V128],
      ['y3', V128],
      ['ca', V128],
      ['cb', V128],
      ['sa', V128],
      ['sb', V128],
      ['v', V128],
    ],
  );
  const X = ['x0', 'x1', 'x2', 'x3'];
  const Y = ['y0', 'y1', 'y2', 'y3'];
  const body = (pair: boolean) => {
    f.get('accPtr').get('r').get('D4').op(0x6c, 0x6a).set('aa');
    f.get('aa').get('D4').op(0x6a).set('ab');
    f.get('wPtr').get('r').get('wStride').op(0x6c, 0x6a).set('wa');
    f.get('wa').get('wStride').op(0x6a).set('wb');
    f.addr4('cPtr', 'r').op(0x2a, 2, 0).splat().set('ca'); // c = splat(c[r])
    if (pair) f.addr4('cPtr', 'r').op(0x2a, 2, 4).splat().set('cb'); // c[r + 1]
    f.i32(0).set('d');
    f.doWhile(
      () => {
        OFFS.forEach((off, j) => {
          f.get('aa').get('d').op(0x6a).vload(off).get('ca').mul4().set(X[j]);
          if (pair) f.get('ab').get('d').op(0x6a).vload(off).get('cb').mul4().set(Y[j]);
        });
        f.i32(0).set('t');
        f.whileNot(
          () => f.get('t').get('nb').op(0x4e),
          () => {
            f.addr4('wa', 't').simd(0x09, 2, 0).set('sa'); // v128.load32_splat
            if (pair) f.addr4('wb', 't').simd(0x09, 2, 0).set('sb');
            // va = vOff + tok[t] + d
            f.get('vOff').addr4('tokPtr', 't').op(0x28, 2, 0).op(0x6a).get('d').op(0x6a).set('va');
            OFFS.forEach((off, j) => {
              f.get('va').vload(off).set('v');
              f.get(X[j]).get('sa').get('v').mul4().add4().set(X[j]);
              if (pair) f.get(Y[j]).get('sb').get('v').mul4().add4().set(Y[j]);
            });
            f.get('t').i32(1).op(0x6a).set('t');
          },
        );
        OFFS.forEach((off, j) => {
          f.get('aa').get('d').op(0x6a).get(X[j]).vstore(off);
          if (pair) f.get('ab').get('d').op(0x6a).get(Y[j]).vstore(off);
        });
        f.get('d').i32(64).op(0x6a).set('d');
      },
      () => f.get('d').get('D4').op(0x48),
    );
  };
  emitRowPairs(f, body);
  return f;
}

/** exp(x) for x ≤ 0 in f32: 2^n · p(f), n = nearest(x·log2 e) (clamped at -126), |f| ≤ ½, p of degree 6. */
function emitExp(f: Fn, x: string, y: string, n: string, fr: string, p: string): void {
  f.get(x).f32(Math.LOG2E).op(0x94).f32(-126).op(0x97).set(y); // y = max(x·log2e, -126)
  f.get(y).op(0x90).set(n); // n = nearest(y)
  f.get(y).get(n).op(0x93).set(fr); // f = y - n
  const c = [1, 0.6931471805599453, 0.2402265069591007, 0.05550410866482158, 0.009618129107628477, 0.0013333558146428443, 0.00015403530393381606];
  f.f32(c[6]);
  for (let k = 5; k >= 0; k--) f.get(fr).op(0x94).f32(c[k]).op(0x92); // Horner
  f.set(p);
  // 2^n from the exponent bits
  f.get(p).get(n).op(0xa8).i32(127).op(0x6a).i32(23).op(0x74).op(0xbe).op(0x94);
}

/** exp of the 4 lanes of v128 local `x` (all ≤ 0), same method as emitExp; leaves the result on the stack. */
function emitExp4(f: Fn, x: string, y: string, n: string, fr: string, p: string): void {
  const splatF = (v: number) => f.f32(v).splat();
  f.get(x);
  splatF(Math.LOG2E);
  f.mul4();
  splatF(-126);
  f.simd(0xe9).set(y); // f32x4.max
  f.get(y).simd(0x6a).set(n); // f32x4.nearest
  f.get(y).get(n).simd(0xe5).set(fr); // f32x4.sub
  const c = [1, 0.6931471805599453, 0.2402265069591007, 0.05550410866482158, 0.009618129107628477, 0.0013333558146428443, 0.00015403530393381606];
  splatF(c[6]);
  for (let k = 5; k >= 0; k--) {
    f.get(fr).mul4();
    splatF(c[k]);
    f.add4();
  }
  f.set(p);
  // 2^n: ((i32x4.trunc_sat(n) + 127) << 23) as f32 lanes
  f.get(p).get(n).simd(0xf8); // i32x4.trunc_sat_f32x4_s
  f.i32(127).simd(0x11); // i32x4.splat
  f.simd(0xae); // i32x4.add
  f.i32(23).simd(0xab); // i32x4.shl
  f.mul4();
}

/**
 * sm(rows, nb, t0, scPtr, scStride, visPtr, mPtr, lPtr, cPtr): online-softmax step of a block.
 * Row r sees n = min(vis[r] - t0, nb) tokens of it; its scores become weights exp(s - m') in
 * place (0 past n), with m' = max(m[r], block max); l[r] = l[r]·c + Σ weights; c[r] = exp(m - m')
 * is the factor pv rescales the row's accumulator by.
 */
function smFunction(): Fn {
  const f = new Fn(
    ['rows', 'nb', 't0', 'scPtr', 'scStride', 'visPtr', 'mPtr', 'lPtr', 'cPtr'],
    [
      ['r', I32],
      ['t', I32],
      ['n', I32],
      ['sr', I32],
      ['mx', F32],
      ['m', F32],
      ['c', F32],
      ['l', F32],
      ['w', F32],
      ['ey', F32],
      ['en', F32],
      ['ef', F32],
      ['ep', F32],
      ['ex', F32],
      ['n4', I32],
      ['vm', V128],
      ['vl', V128],
      ['vx', V128],
      ['vy', V128],
      ['vn', V128],
      ['vf', V128],
      ['vp', V128],
      ['vw', V128],
    ],
  );
  const zeroFrom = (start: () => void) => {
    start();
    f.set('t');
    f.whileNot(
      () => f.get('t').get('nb').op(0x4e),
      () => {
        f.addr4('sr', 't').f32(0).op(0x38, 2, 0);
        f.get('t').i32(1).op(0x6a).set('t');
      },
    );
  };
  f.i32(0).set('r');
  f.whileNot(
    () => f.get('r').get('rows').op(0x4e),
    () => {
      f.get('scPtr').get('r').get('scStride').op(0x6c, 0x6a).set('sr');
      // n = min(vis[r] - t0, nb)
      f.addr4('visPtr', 'r').op(0x28, 2, 0).get('t0').op(0x6b).set('n');
      f.ifElse(
        () => f.get('n').get('nb').op(0x4a), // i32.gt_s
        () => f.get('nb').set('n'),
      );
      f.ifElse(
        () => f.get('n').i32(0).op(0x4c), // i32.le_s: nothing visible in this block
        () => {
          f.addr4('cPtr', 'r').f32(1).op(0x38, 2, 0);
          zeroFrom(() => f.i32(0));
        },
        () => {
          f.f32(-Infinity).set('mx');
          f.i32(0).set('t');
          f.whileNot(
            () => f.get('t').get('n').op(0x4e),
            () => {
              f.get('mx').addr4('sr', 't').op(0x2a, 2, 0).op(0x97).set('mx');
              f.get('t').i32(1).op(0x6a).set('t');
            },
          );
          f.addr4('mPtr', 'r').op(0x2a, 2, 0).set('m');
          f.f32(1).set('c');
          f.ifElse(
            () => f.get('mx').get('m').op(0x5e), // f32.gt
            () => {
              f.get('m').get('mx').op(0x93).set('ex');
              emitExp(f, 'ex', 'ey', 'en', 'ef', 'ep');
              f.set('c');
              f.get('mx').set('m');
              f.addr4('mPtr', 'r').get('m').op(0x38, 2, 0);
            },
          );
          f.addr4('lPtr', 'r').op(0x2a, 2, 0).get('c').op(0x94).set('l');
          // weights four at a time, then the last n % 4 one at a time
          f.get('m').splat().set('vm');
          f.vzero().set('vl');
          f.get('n').i32(-4).op(0x71).set('n4'); // i32.and
          f.i32(0).set('t');
          f.whileNot(
            () => f.get('t').get('n4').op(0x4e),
            () => {
              f.addr4('sr', 't').vload(0).get('vm').simd(0xe5).set('vx');
              emitExp4(f, 'vx', 'vy', 'vn', 'vf', 'vp');
              f.set('vw');
              f.addr4('sr', 't').get('vw').vstore(0);
              f.get('vl').get('vw').add4().set('vl');
              f.get('t').i32(4).op(0x6a).set('t');
            },
          );
          f.get('l').get('vl').lane(0).get('vl').lane(1).op(0x92).get('vl').lane(2).get('vl').lane(3).op(0x92).op(0x92).op(0x92).set('l');
          f.whileNot(
            () => f.get('t').get('n').op(0x4e),
            () => {
              f.addr4('sr', 't').op(0x2a, 2, 0).get('m').op(0x93).set('ex');
              emitExp(f, 'ex', 'ey', 'en', 'ef', 'ep');
              f.set('w');
              f.addr4('sr', 't').get('w').op(0x38, 2, 0);
              f.get('l').get('w').op(0x92).set('l');
              f.get('t').i32(1).op(0x6a).set('t');
            },
          );
          zeroFrom(() => f.get('n'));
          f.addr4('lPtr', 'r').get('l').op(0x38, 2, 0);
          f.addr4('cPtr', 'r').get('c').op(0x38, 2, 0);
        },
      );
      f.get('r').i32(1).op(0x6a).set('r');
    },
  );
  return f;
}

/**
 * Probe loop (see `CpuBackend.probe`): stream(ptr, bytes) sums f32x4 loads over
 * [ptr, ptr + bytes) (bytes a multiple of 64) and returns an f32 so the reads cannot be dropped.
 */
function streamFunction(): Fn {
  const f = new Fn(['ptr', 'bytes'], [['e', I32], ['s0', V128], ['s1', V128], ['s2', V128], ['s3', V128]]);
  for (const x of ['s0', 's1', 's2', 's3']) f.vzero().set(x);
  f.get('ptr').get('bytes').op(0x6a).set('e');
  f.doWhile(
    () => {
      OFFS.forEach((off, j) => f.get(`s${j}`).get('ptr').vload(off).add4().set(`s${j}`));
      f.get('ptr').i32(64).op(0x6a).set('ptr');
    },
    () => f.get('ptr').get('e').op(0x49), // i32.lt_u
  );
  f.get('s0').get('s1').add4().get('s2').get('s3').add4().add4().lane(0);
  return f;
}

/** The module's bytes: imports a shared memory `env.mem` of `maxPages` pages at most. */
export function kernelWasmBytes(maxPages = 65536): Uint8Array<ArrayBuffer> {
  const qk = qkFunction();
  const pv = pvFunction();
  const sm = smFunction();
  // sections hold a count of entries, then the entries
  const stream = streamFunction();
  const fnType = (n: number, results: number[] = []) => [0x60, ...uleb(n), ...new Array(n).fill(I32), ...uleb(results.length), ...results];
  const types = section(1, [
    ...uleb(4),
    ...fnType(qk.params.length),
    ...fnType(pv.params.length),
    ...fnType(sm.params.length),
    ...fnType(stream.params.length, [F32]),
  ]);
  // shared memory limits: flag 3 = has maximum + shared
  const imports = section(2, [...uleb(1), ...str('env'), ...str('mem'), 0x02, 0x03, ...uleb(1), ...uleb(maxPages)]);
  const funcs = section(3, [...uleb(4), 0, 1, 2, 3]);
  const names = ['qk', 'pv', 'sm', 'stream'];
  const exports = section(7, [...uleb(names.length), ...names.flatMap((n, i) => [...str(n), 0x00, i])]);
  const code = section(10, [...uleb(4), ...qk.encode(), ...pv.encode(), ...sm.encode(), ...stream.encode()]);
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...types, ...imports, ...funcs, ...exports, ...code]);
}

/** The compiled module, or undefined where WebAssembly SIMD or shared memory is unavailable. */
export function kernelWasmModule(): WebAssembly.Module | undefined {
  try {
    if (typeof WebAssembly !== 'object' || typeof SharedArrayBuffer !== 'function') return undefined;
    const bytes = kernelWasmBytes();
    if (!WebAssembly.validate(bytes)) return undefined;
    return new WebAssembly.Module(bytes);
  } catch {
    return undefined;
  }
}
