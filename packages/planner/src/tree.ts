/**
 * The radix tree over requests' page lists, kept in a mutable node pool so that a decode step can
 * update it in place (see `state.ts`), and its canonical export as a core `TokenTree`.
 *
 * Keys: a node starts with one page segment `(pageId, tokens)`; two requests share a node only
 * where their segments are identical (same page id, same token count). A node stores no pages:
 * it reads them from any request that passes through it (`src`), page indices `[pb, pe)` of that
 * request's lists (every request through a node holds the same segments at the same indices).
 * No work is per token; insertion compares at most one int pair per page.
 */
import { fail, type Batch, type BatchRequest, type TokenTree } from '@canopy/core';

// Node's Buffer (when present) compares long page ranges with a native memcmp; elsewhere a loop.
// Byte views of each page array are made once per request (RadixTree.bytes) and compared by range.
type CompareFn = (this: Uint8Array, target: Uint8Array, tStart: number, tEnd: number, sStart: number, sEnd: number) => number;
const nativeCompare: CompareFn | undefined = (globalThis as { Buffer?: { prototype: { compare: CompareFn } } }).Buffer?.prototype.compare;
const NATIVE_AT = 48;
/** First index in [from, to) where the two requests' segments differ, or `to`. */
export function firstMismatch(ai: Int32Array, at: Int32Array, bi: Int32Array, bt: Int32Array, from: number, to: number): number {
  let j = from;
  while (j < to && ai[j] === bi[j] && at[j] === bt[j]) j++;
  return j;
}

/**
 * Checks that request r holds the same segments as request v at page indices [0, e), for the
 * optimistic full build (RadixTree.insertChecked). Under Node, `Buffer.prototype.equals` compares
 * r's whole id (token) array, with no byte view of it made, against a scratch that holds v's
 * prefix [0, e) followed by r's own tail [e, n): one native memcmp per array and request. Making
 * two byte views per request cost more than the compare itself. The scratch keeps v's prefix
 * between requests that check against the same v (all the leaves under one shared node).
 * Elsewhere, or for short prefixes, a plain loop.
 */
type EqualsFn = (this: ArrayBufferView, other: Uint8Array) => boolean;
const nativeEquals: EqualsFn | undefined = (() => {
  const eq = (globalThis as { Buffer?: { prototype: { equals?: EqualsFn } } }).Buffer?.prototype.equals;
  if (typeof eq !== 'function') return undefined;
  try {
    // Relies on equals accepting any typed array as `this` (it compares byte lengths and bytes).
    const a = Int32Array.of(1, 2, 3);
    if (eq.call(a, new Uint8Array(Int32Array.of(1, 2, 3).buffer)) !== true) return undefined;
    if (eq.call(a, new Uint8Array(Int32Array.of(1, 2, 4).buffer)) !== false) return undefined;
    if (eq.call(a.subarray(1), new Uint8Array(Int32Array.of(2, 3).buffer)) !== true) return undefined;
    return eq;
  } catch {
    return undefined;
  }
})();
/** Prefixes shorter than this are compared in a loop (a native call costs about 100 ns). */
const LOOP_BELOW = 48;

class PrefixCheck {
  ids = new Int32Array(0);
  tks = new Int32Array(0);
  /** Byte views of the scratch of exactly 4·n bytes, by n (a Map: n is sparse). */
  idsViews = new Map<number, Uint8Array>();
  tksViews = new Map<number, Uint8Array>();
  lastIdsView: Uint8Array = new Uint8Array(0);
  lastTksView: Uint8Array = new Uint8Array(0);
  /** Arrays whose prefix [0, validTo) the scratch holds. */
  whoIds: Int32Array | null = null;
  whoTks: Int32Array | null = null;
  validTo = 0;

  /** Forget the scratch's contents (arrays may be mutated between builds). */
  reset(): void {
    this.whoIds = null;
    this.whoTks = null;
    this.validTo = 0;
  }

  equalPrefix(ai: Int32Array, at: Int32Array, bi: Int32Array, bt: Int32Array, e: number): boolean {
    const n = ai.length;
    if (e < LOOP_BELOW) return firstMismatch(ai, at, bi, bt, 0, e) === e;
    // The very same array is equal without a look (requests that share their page-list objects).
    // Views of one buffer at one offset would be too, but reading `.buffer` and `.byteOffset` of
    // four arrays per request cost W5's build more than it saves where it applies.
    const sameIds = ai === bi;
    const sameTks = at === bt;
    if (sameIds && sameTks) return true;
    if (nativeEquals === undefined || n - e > e) return firstMismatch(ai, at, bi, bt, 0, e) === e;
    if (this.ids.length < n) {
      const cap = Math.max(n, 2 * this.ids.length, 256);
      this.ids = new Int32Array(cap);
      this.tks = new Int32Array(cap);
      this.idsViews = new Map();
      this.tksViews = new Map();
      this.lastIdsView = new Uint8Array(0);
      this.lastTksView = new Uint8Array(0);
      this.reset();
    }
    const si = this.ids;
    const st = this.tks;
    if (this.whoIds !== bi || this.whoTks !== bt || this.validTo < e) {
      si.set(e === bi.length ? bi : bi.subarray(0, e));
      st.set(e === bt.length ? bt : bt.subarray(0, e));
      this.whoIds = bi;
      this.whoTks = bt;
      this.validTo = e;
    }
    // r's own tail after the prefix (equal to itself); this overwrites the rest of b's prefix
    if (n - e < 64) {
      for (let j = e; j < n; j++) {
        si[j] = ai[j];
        st[j] = at[j];
      }
    } else {
      si.set(ai.subarray(e), e);
      st.set(at.subarray(e), e);
    }
    if (this.validTo > e) this.validTo = e;
    // views of exactly 4·n bytes; requests mostly come in runs of one length
    let vi = this.lastIdsView;
    let vt = this.lastTksView;
    if (vi.length !== 4 * n) {
      vi = this.idsViews.get(n) ?? new Uint8Array(si.buffer, 0, 4 * n);
      vt = this.tksViews.get(n) ?? new Uint8Array(st.buffer, 0, 4 * n);
      this.idsViews.set(n, vi);
      this.tksViews.set(n, vt);
      this.lastIdsView = vi;
      this.lastTksView = vt;
    }
    return (sameIds || nativeEquals.call(ai, vi)) && (sameTks || nativeEquals.call(at, vt));
  }
}
const prefixCheck = new PrefixCheck();

// Initial values of the typed-array fields (replaced before use): one shared empty array instead
// of a fresh one per field and object (a full build makes a tree, and each cost ~0.1 µs).
const NO_I32 = new Int32Array(0);
const NO_F64 = new Float64Array(0);

/** Virtual super-root: node 0, no pages. Real roots are its children (parent -1 when exported). */
export const VROOT = 0;
/** Nodes with more children than this find them through the tree's child index (wide fans,
 * thousands of roots) instead of walking the list. */
const MAP_AT = 8;
/** The child index starts with room for this many entries at half load. */
const INDEX_MIN = 64;

export class RadixTree {
  cap = 0;
  parent: Int32Array = NO_I32;
  firstChild: Int32Array = NO_I32;
  nextSib: Int32Array = NO_I32;
  prevSib: Int32Array = NO_I32;
  numChildren: Int32Array = NO_I32;
  pb: Int32Array = NO_I32;
  pe: Int32Array = NO_I32;
  src: Int32Array = NO_I32;
  pos: Int32Array = NO_I32;
  tokens: Int32Array = NO_I32;
  refCount: Int32Array = NO_I32;
  endCount: Int32Array = NO_I32;
  stamp: Int32Array = NO_I32;
  /** 1 where the node's children are in the child index (it had more than MAP_AT at some point
   * since it was allocated), else 0: its list is walked. */
  indexed: Int32Array = NO_I32;
  /** Key of the node's first segment: pageId * keyMul + tokens (exact in a double). */
  key: Float64Array = NO_F64;
  /**
   * The child index: one open-addressing hash table (linear probing, at most half full) from
   * (parent, key) to child for the children of indexed nodes. Slot s is empty where ixP[s] is 0,
   * else holds parent ixP[s] - 1, key ixK[s] and child ixC[s]. Typed arrays instead of a Map per
   * wide node: a full build of W5 adds 256 leaves under one node, a get and a set each (a Map's
   * cost several times a probe here, and growing it rehashes).
   */
  ixP: Int32Array = NO_I32;
  ixK: Float64Array = NO_F64;
  ixC: Int32Array = NO_I32;
  ixCount = 0;
  /** Released nodes (reused first); below `cap`, ids from `fresh` on were never handed out. */
  freeList: number[] = [];
  fresh = 0;
  numAlive = 0;
  epoch = 0;

  /** The current batch's requests: a copy after a full build or a general step, the batch's own
   * list after a decode step (no copy). Never written through (it may be the caller's array);
   * the request count is `reqLeaf.length`. */
  requests: BatchRequest[] = [];
  /** Leaf node of each request (-1 while unplaced). */
  reqLeaf: Int32Array = NO_I32;
  /** Per request: page count, last page id and its token count, as of the batch the tree was
   * last updated to (a step compares the next batch with these, without touching the old batch). */
  lastN: Int32Array = NO_I32;
  lastId: Int32Array = NO_I32;
  lastTok: Int32Array = NO_I32;

  /** Record lastN/lastId/lastTok of every request (fresh arrays). */
  recordLast(): void {
    this.allocLast();
    for (let r = 0; r < this.requests.length; r++) this.recordLastOf(r);
  }

  /** Fresh lastN/lastId/lastTok arrays, one entry per request (filled by recordLastOf). */
  allocLast(): void {
    const R = this.requests.length;
    this.lastN = new Int32Array(R);
    this.lastId = new Int32Array(R);
    this.lastTok = new Int32Array(R);
  }

  /** Record request r's page count, last page id and its token count. */
  recordLastOf(r: number): void {
    const q = this.requests[r];
    const n = q.pageIds.length;
    this.lastN[r] = n;
    this.lastId[r] = q.pageIds[n - 1];
    this.lastTok[r] = q.pageTokens[n - 1];
  }
  readonly keyMul: number;

  constructor(
    public numPages: number,
    readonly pageSize: number,
    capacity = 64,
  ) {
    this.keyMul = pageSize + 1;
    this.grow(Math.max(capacity, 4));
    const r = this.alloc();
    // VROOT
    this.parent[r] = -1;
    this.pb[r] = 0;
    this.pe[r] = 0;
    this.pos[r] = 0;
    this.tokens[r] = 0;
    this.src[r] = -1;
  }

  private grow(cap: number): void {
    // One allocation for all pool arrays (typed-array allocation costs more than the planning on
    // small trees); each field is a view, copied over on growth.
    const fields = ['parent', 'firstChild', 'nextSib', 'prevSib', 'numChildren', 'pb', 'pe', 'src', 'pos', 'tokens', 'refCount', 'endCount', 'stamp', 'indexed'] as const;
    const buf = new ArrayBuffer(cap * 8 + cap * 4 * fields.length);
    const k = new Float64Array(buf, 0, cap);
    k.set(this.key);
    this.key = k;
    fields.forEach((f, i) => {
      const a = new Int32Array(buf, cap * 8 + i * cap * 4, cap);
      a.set(this[f]);
      this[f] = a;
    });
    this.cap = cap;
  }

  /** Where probing for (p, key) starts: a hash of the parent and both 32-bit halves of the key
   * (an integer below 2^53). Insertion and deletion must agree on it. */
  private ixHome(p: number, key: number): number {
    let h = Math.imul(p + 1, 0x9e3779b1) ^ Math.imul(key | 0, 0x85ebca6b) ^ ((key / 4294967296) | 0);
    h ^= h >>> 15;
    return h & (this.ixP.length - 1);
  }

  /** Slot of (p, key) in the child index, or of the empty slot where probing for it ended. */
  private ixSlot(p: number, key: number): number {
    const mask = this.ixP.length - 1;
    let s = this.ixHome(p, key);
    const P1 = p + 1;
    const ixP = this.ixP;
    for (;;) {
      const q = ixP[s];
      if (q === 0 || (q === P1 && this.ixK[s] === key)) return s;
      s = (s + 1) & mask;
    }
  }

  private ixGet(p: number, key: number): number {
    const s = this.ixSlot(p, key);
    return this.ixP[s] === 0 ? -1 : this.ixC[s];
  }

  /** Set (p, key) → c, adding the entry when absent. */
  private ixSet(p: number, key: number, c: number): void {
    if (2 * (this.ixCount + 1) > this.ixP.length) this.ixGrow();
    const s = this.ixSlot(p, key);
    if (this.ixP[s] === 0) {
      this.ixP[s] = p + 1;
      this.ixK[s] = key;
      this.ixCount++;
    }
    this.ixC[s] = c;
  }

  /** Remove (p, key) when present (backward-shift deletion: no tombstones). */
  private ixDelete(p: number, key: number): void {
    if (this.ixCount === 0) return;
    let s = this.ixSlot(p, key);
    const ixP = this.ixP;
    if (ixP[s] === 0) return;
    const mask = ixP.length - 1;
    this.ixCount--;
    // move later entries of the probe run back into the hole where their probe passes it
    for (let t = (s + 1) & mask; ixP[t] !== 0; t = (t + 1) & mask) {
      const k = this.ixK[t];
      const home = this.ixHome(ixP[t] - 1, k);
      // the entry at t may move to s when s lies cyclically in [home, t)
      if (((t - home) & mask) >= ((t - s) & mask)) {
        ixP[s] = ixP[t];
        this.ixK[s] = k;
        this.ixC[s] = this.ixC[t];
        s = t;
      }
    }
    ixP[s] = 0;
  }

  private ixGrow(): void {
    const oldP = this.ixP;
    const oldK = this.ixK;
    const oldC = this.ixC;
    const n = Math.max(2 * oldP.length, INDEX_MIN * 2);
    this.ixP = new Int32Array(n);
    this.ixK = new Float64Array(n);
    this.ixC = new Int32Array(n);
    for (let s = 0; s < oldP.length; s++) {
      if (oldP[s] === 0) continue;
      const t = this.ixSlot(oldP[s] - 1, oldK[s]);
      this.ixP[t] = oldP[s];
      this.ixK[t] = oldK[s];
      this.ixC[t] = oldC[s];
    }
  }

  private alloc(): number {
    let n: number;
    if (this.freeList.length > 0) n = this.freeList.pop()!;
    else {
      if (this.fresh === this.cap) this.grow(this.cap * 2);
      n = this.fresh++;
    }
    this.firstChild[n] = -1;
    this.nextSib[n] = -1;
    this.prevSib[n] = -1;
    this.numChildren[n] = 0;
    this.refCount[n] = 0;
    this.endCount[n] = 0;
    this.stamp[n] = 0;
    this.indexed[n] = 0;
    this.numAlive++;
    return n;
  }

  private release(n: number): void {
    // an indexed node leaves no entries behind (its id is reused)
    if (this.indexed[n] === 1) for (let c = this.firstChild[n]; c !== -1; c = this.nextSib[c]) this.ixDelete(n, this.key[c]);
    this.indexed[n] = 0;
    this.parent[n] = -2;
    this.freeList.push(n);
    this.numAlive--;
  }

  /** Byte views of the requests' page arrays for the native compare (ids at 2r, tokens at
   * 2r + 1), made once per request; reset whenever `requests` is replaced. */
  byteViews: (Uint8Array | undefined)[] = [];

  private bytes(r: number, tokens: number): Uint8Array {
    let v = this.byteViews[2 * r + tokens];
    if (v === undefined) {
      const req = this.requests[r];
      const a = tokens ? req.pageTokens : req.pageIds;
      v = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      this.byteViews[2 * r + tokens] = v;
    }
    return v;
  }

  /** Whether requests a and b hold the same segments at page indices [from, to) (native memcmp). */
  private rangeEqual(a: number, b: number, from: number, to: number): boolean {
    if (a === b) return true;
    const f = from * 4;
    const e = to * 4;
    const ra = this.requests[a];
    const rb = this.requests[b];
    return (
      (ra.pageIds === rb.pageIds || nativeCompare!.call(this.bytes(a, 0), this.bytes(b, 0), f, e, f, e) === 0) &&
      (ra.pageTokens === rb.pageTokens || nativeCompare!.call(this.bytes(a, 1), this.bytes(b, 1), f, e, f, e) === 0)
    );
  }

  /** Treat a page id as naming its whole prefix (see PrefixPlannerOptions.trustPageIds). */
  trustPageIds = false;

  /** Deep copy (for benchmarks that replay one step many times). Built through the constructor
   * so the copy has the same hidden class as any tree (a different one would make the planner's
   * hot functions polymorphic, which the benchmark would then measure). */
  clone(): RadixTree {
    const t = new RadixTree(this.numPages, this.pageSize, 4);
    t.cap = this.cap;
    for (const f of ['parent', 'firstChild', 'nextSib', 'prevSib', 'numChildren', 'pb', 'pe', 'src', 'pos', 'tokens', 'refCount', 'endCount', 'stamp', 'indexed'] as const) {
      t[f] = this[f].slice();
    }
    t.key = this.key.slice();
    t.ixP = this.ixP.slice();
    t.ixK = this.ixK.slice();
    t.ixC = this.ixC.slice();
    t.ixCount = this.ixCount;
    t.freeList = this.freeList.slice();
    t.fresh = this.fresh;
    t.numAlive = this.numAlive;
    t.epoch = this.epoch;
    t.requests = this.requests.slice();
    t.byteViews = [];
    t.reqLeaf = this.reqLeaf.slice();
    t.lastN = this.lastN.slice();
    t.lastId = this.lastId.slice();
    t.lastTok = this.lastTok.slice();
    t.trustPageIds = this.trustPageIds;
    return t;
  }

  findChild(n: number, key: number): number {
    if (this.indexed[n] === 1) return this.ixGet(n, key);
    for (let c = this.firstChild[n]; c !== -1; c = this.nextSib[c]) if (this.key[c] === key) return c;
    return -1;
  }

  private link(p: number, c: number): void {
    this.parent[c] = p;
    const f = this.firstChild[p];
    this.nextSib[c] = f;
    this.prevSib[c] = -1;
    if (f !== -1) this.prevSib[f] = c;
    this.firstChild[p] = c;
    const nc = ++this.numChildren[p];
    if (this.indexed[p] === 1) this.ixSet(p, this.key[c], c);
    else if (nc > MAP_AT) {
      this.indexed[p] = 1;
      for (let x = this.firstChild[p]; x !== -1; x = this.nextSib[x]) this.ixSet(p, this.key[x], x);
    }
  }

  private unlink(c: number): void {
    const p = this.parent[c];
    const a = this.prevSib[c];
    const b = this.nextSib[c];
    if (a !== -1) this.nextSib[a] = b;
    else this.firstChild[p] = b;
    if (b !== -1) this.prevSib[b] = a;
    this.numChildren[p]--;
    if (this.indexed[p] === 1) this.ixDelete(p, this.key[c]);
  }

  /** Put `nw` where `old` is in old's parent's child list (same key). */
  private replaceChild(old: number, nw: number): void {
    const p = this.parent[old];
    this.parent[nw] = p;
    const a = this.prevSib[old];
    const b = this.nextSib[old];
    this.prevSib[nw] = a;
    this.nextSib[nw] = b;
    if (a !== -1) this.nextSib[a] = nw;
    else this.firstChild[p] = nw;
    if (b !== -1) this.prevSib[b] = nw;
    if (this.indexed[p] === 1) this.ixSet(p, this.key[nw], nw);
  }

  /** A new node for pages [i, e) of request r under p; checks the pages it takes in. */
  private newNode(p: number, r: number, req: BatchRequest, i: number, e: number): number {
    const n = this.alloc();
    const ids = req.pageIds;
    const tk = req.pageTokens;
    let t = 0;
    const P = this.pageSize;
    const NP = this.numPages;
    for (let s = i; s < e; s++) {
      const pg = ids[s];
      const k = tk[s];
      // Pages entering the tree for the first time are checked here; pages matched against an
      // existing node equal pages checked before, so every page of the batch is checked once.
      if (!(pg >= 0 && pg < NP) || (pg | 0) !== pg) fail('page-out-of-range', `request ${r} segment ${s}: page id ${pg} out of range [0, ${NP})`);
      if (!(k >= 1 && k <= P) || (k | 0) !== k) fail('bad-segment', `request ${r} segment ${s}: uses ${k} tokens of page ${pg}; must be 1..pageSize (${P})`);
      t += k;
    }
    this.pb[n] = i;
    this.pe[n] = e;
    this.src[n] = r;
    this.pos[n] = this.pos[p] + this.tokens[p];
    this.tokens[n] = t;
    this.key[n] = ids[i] * this.keyMul + tk[i];
    this.link(p, n);
    return n;
  }

  /** Split node c at page index j (pb < j < pe): returns the new upper node. */
  private split(c: number, j: number): number {
    const u = this.alloc();
    const req = this.requests[this.src[c]];
    let t = 0;
    for (let s = this.pb[c]; s < j; s++) t += req.pageTokens[s];
    this.pb[u] = this.pb[c];
    this.pe[u] = j;
    this.src[u] = this.src[c];
    this.pos[u] = this.pos[c];
    this.tokens[u] = t;
    this.key[u] = this.key[c];
    this.refCount[u] = this.refCount[c];
    this.replaceChild(c, u);
    this.pb[c] = j;
    this.pos[c] += t;
    this.tokens[c] -= t;
    this.key[c] = req.pageIds[j] * this.keyMul + req.pageTokens[j];
    // c becomes u's only child
    this.parent[c] = u;
    this.firstChild[u] = c;
    this.nextSib[c] = -1;
    this.prevSib[c] = -1;
    this.numChildren[u] = 1;
    return u;
  }

  /**
   * Insert request r (already at `this.requests[r]`) from the root; `bounds` (ascending page
   * indices, ending with the page count) force node boundaries (explicit trees). Returns its leaf.
   */
  insert(r: number, bounds: Int32Array | null): number {
    const req = this.requests[r];
    const ids = req.pageIds;
    const tk = req.pageTokens;
    const n = ids.length;
    if (n === 0) fail('bad-batch', `request ${r} has no KV pages`);
    let cur = VROOT;
    this.refCount[VROOT]++;
    let i = 0;
    let bi = 0;
    const KM = this.keyMul;
    while (i < n) {
      let nextBound = n;
      if (bounds) {
        while (bounds[bi] <= i) bi++;
        nextBound = bounds[bi];
      }
      const c = this.findChild(cur, ids[i] * KM + tk[i]);
      if (c === -1) {
        // A fresh chain for the rest of the request (split at forced bounds).
        while (i < n) {
          let e = n;
          if (bounds) {
            while (bounds[bi] <= i) bi++;
            e = bounds[bi];
          }
          const x = this.newNode(cur, r, req, i, e);
          this.refCount[x] = 1;
          cur = x;
          i = e;
        }
        break;
      }
      const sreq = this.requests[this.src[c]];
      const sids = sreq.pageIds;
      const stk = sreq.pageTokens;
      const pe = this.pe[c];
      const lim = Math.min(pe, n, nextBound);
      let j: number;
      if (this.trustPageIds) {
        // Matches are prefix-closed under the assumption: binary-search the first mismatch.
        let lo = i + 1;
        let hi = lim;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (sids[mid] === ids[mid] && stk[mid] === tk[mid]) lo = mid + 1;
          else hi = mid;
        }
        j = lo;
      } else if (nativeCompare && lim - i - 1 >= NATIVE_AT && this.rangeEqual(this.src[c], r, i + 1, lim)) j = lim;
      else j = firstMismatch(sids, stk, ids, tk, i + 1, lim);
      let x = c;
      if (j < pe) x = this.split(c, j);
      this.refCount[x]++;
      cur = x;
      i = j;
    }
    this.endCount[cur]++;
    this.reqLeaf[r] = cur;
    return cur;
  }

  /** Of the last insertChecked: the source request of the deepest node the request matched
   * (-1: none; the request's pages all entered the tree through newNode) and the end of its
   * matched prefix (a page index). The request holds that source's pages on [0, matchEnd)
   * exactly where page ids name their prefix; `buildRadix` checks that afterwards. */
  matchSrc = -1;
  matchEnd = 0;

  /** Node path of the last insertChecked (scratch). */
  private path: Int32Array = new Int32Array(16);

  /**
   * Insert request r from the root, finding where it leaves each node it enters by looking at
   * few pages: the node's last page in range first (a request that matches a whole node, the
   * common case, costs one look), else a binary search for a mismatch. That is exact only where
   * page ids name their prefix; with `check`, the request's whole matched prefix [0, e) is then
   * compared with the node's source request in one go (see PrefixCheck), and on any difference
   * the request is inserted by the exact page-by-page walk instead (`insert`). The tree is not
   * touched before the check, so the result is always the exact radix tree. Why one comparison
   * with the deepest node's source suffices: every request through a node holds that node's
   * source's pages on the node's range (the invariant this keeps), and that source passes
   * through every node above; a mismatch found is a real one (both pages were looked at).
   * Without `check` this is the `trustPageIds` insert. No explicit-tree bounds.
   */
  insertChecked(r: number, check: boolean): number {
    const req = this.requests[r];
    const ids = req.pageIds;
    const tk = req.pageTokens;
    const n = ids.length;
    if (n === 0) fail('bad-batch', `request ${r} has no KV pages`);
    const KM = this.keyMul;
    const tpe = this.pe;
    let path = this.path;
    let depth = 0;
    let cur = VROOT;
    let i = 0;
    let last = -1;
    while (i < n) {
      const c = this.findChild(cur, ids[i] * KM + tk[i]);
      if (c === -1) break;
      const s = this.requests[this.src[c]];
      const sids = s.pageIds;
      const stk = s.pageTokens;
      const pe = tpe[c];
      const lim = pe < n ? pe : n;
      let j = lim;
      const e = lim - 1;
      if (e > i && (sids[e] !== ids[e] || stk[e] !== tk[e])) {
        // first mismatch in (i, e]; e mismatches
        let lo = i + 1;
        let hi = e;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (sids[mid] === ids[mid] && stk[mid] === tk[mid]) lo = mid + 1;
          else hi = mid;
        }
        j = lo;
      }
      if (depth === path.length) {
        const p2 = new Int32Array(2 * depth);
        p2.set(path);
        this.path = path = p2;
      }
      path[depth++] = c;
      last = c;
      i = j;
      if (j < pe) break;
      cur = c;
    }
    if (check && last !== -1) {
      const v = this.requests[this.src[last]];
      if (!prefixCheck.equalPrefix(ids, tk, v.pageIds, v.pageTokens, i)) return this.insert(r, null);
    }
    this.matchSrc = last === -1 ? -1 : this.src[last];
    this.matchEnd = i;
    this.refCount[VROOT]++;
    for (let k = 0; k < depth - 1; k++) this.refCount[path[k]]++;
    if (last !== -1) {
      let x = last;
      if (i < tpe[last]) x = this.split(last, i);
      this.refCount[x]++;
      cur = x;
    }
    if (i < n) {
      const x = this.newNode(cur, r, req, i, n);
      this.refCount[x] = 1;
      cur = x;
    }
    this.endCount[cur]++;
    this.reqLeaf[r] = cur;
    return cur;
  }

  /**
   * Remove request r's path (its leaf is reqLeaf[r]); deletes nodes no request uses any more and
   * merges a node left with one child and no request ending at it into that child, so the tree
   * stays the radix tree of the remaining requests.
   */
  remove(r: number): void {
    const leaf = this.reqLeaf[r];
    this.reqLeaf[r] = -1;
    this.endCount[leaf]--;
    let x = leaf;
    let lastAlive = -1;
    while (x !== VROOT) {
      const p = this.parent[x];
      if (--this.refCount[x] === 0) {
        this.unlink(x);
        this.release(x);
      } else if (lastAlive === -1) lastAlive = x;
      x = p;
    }
    this.refCount[VROOT]--;
    // Only the deepest surviving node of the path can have lost a child or its last ending request.
    if (lastAlive !== -1) this.compress(lastAlive);
  }

  /** Change a node's key (its first segment grew); false when a sibling already has that key. */
  rekey(n: number, key: number): boolean {
    if (this.key[n] === key) return true;
    const p = this.parent[n];
    if (this.findChild(p, key) !== -1) return false;
    if (this.indexed[p] === 1) {
      this.ixDelete(p, this.key[n]);
      this.ixSet(p, key, n);
    }
    this.key[n] = key;
    return true;
  }

  /** Merge n into its only child when no request ends at n. */
  compress(n: number): void {
    if (n === VROOT || this.endCount[n] !== 0 || this.numChildren[n] !== 1) return;
    const c = this.firstChild[n];
    // n's index entry for c goes before c's key changes (c moves up to n's parent)
    if (this.indexed[n] === 1) {
      this.ixDelete(n, this.key[c]);
      this.indexed[n] = 0;
    }
    this.pb[c] = this.pb[n];
    this.pos[c] = this.pos[n];
    this.tokens[c] += this.tokens[n];
    this.key[c] = this.key[n];
    this.replaceChild(n, c);
    this.release(n);
  }

  /**
   * Canonical node order: nodes sorted by (smallest request index in the subtree, depth). It does
   * not depend on how the tree was built, so an incrementally updated tree and a fresh build give
   * identical plans. Also sets `src` to that smallest request (a request through the node).
   * Returns the node ids in order.
   */
  canonicalOrder(partial = false): Int32Array {
    const order = new Int32Array(this.numAlive - 1);
    const ep = ++this.epoch;
    const stamp = this.stamp;
    const parent = this.parent;
    let k = 0;
    const R = this.requests.length;
    for (let r = 0; r < R; r++) {
      let x = this.reqLeaf[r];
      if (x === -1) {
        if (partial) continue;
        fail('internal', `request ${r} has no leaf in the planner tree`);
      }
      const start = k;
      while (x !== VROOT && stamp[x] !== ep) {
        stamp[x] = ep;
        this.src[x] = r;
        order[k++] = x;
        x = parent[x];
      }
      // collected bottom-up; reverse to top-down
      for (let a = start, b = k - 1; a < b; a++, b--) {
        const t = order[a];
        order[a] = order[b];
        order[b] = t;
      }
    }
    if (!partial && k !== order.length) fail('internal', `planner tree has ${order.length - k} unreachable nodes`);
    return order;
  }

  /** Set every node's `src` to the smallest placed request through it (no order output). */
  refreshSrc(): void {
    const ep = ++this.epoch;
    const stamp = this.stamp;
    const parent = this.parent;
    const R = this.requests.length;
    for (let r = 0; r < R; r++) {
      let x = this.reqLeaf[r];
      while (x > VROOT && stamp[x] !== ep) {
        stamp[x] = ep;
        this.src[x] = r;
        x = parent[x];
      }
    }
  }

  /** Export as a core TokenTree in canonical order. */
  toTokenTree(order: Int32Array, batch: Batch): TokenTree {
    const N = order.length;
    const idx = new Int32Array(this.cap).fill(-1);
    for (let k = 0; k < N; k++) idx[order[k]] = k;
    const parent = new Int32Array(N);
    const nodePos = new Int32Array(N);
    const nodeTokens = new Int32Array(N);
    const segBegin = new Int32Array(N + 1);
    for (let k = 0; k < N; k++) {
      const x = order[k];
      const p = this.parent[x];
      parent[k] = p === VROOT ? -1 : idx[p];
      nodePos[k] = this.pos[x];
      nodeTokens[k] = this.tokens[x];
      segBegin[k + 1] = segBegin[k] + this.pe[x] - this.pb[x];
    }
    const segPage = new Int32Array(segBegin[N]);
    const segTokens = new Int32Array(segBegin[N]);
    for (let k = 0; k < N; k++) {
      const x = order[k];
      const req = this.requests[this.src[x]];
      segPage.set(req.pageIds.subarray(this.pb[x], this.pe[x]), segBegin[k]);
      segTokens.set(req.pageTokens.subarray(this.pb[x], this.pe[x]), segBegin[k]);
    }
    let nq = 0;
    for (const r of batch.requests) nq += r.numQueries;
    const queryNode = new Int32Array(nq);
    let q = 0;
    batch.requests.forEach((r, ri) => {
      const leaf = idx[this.reqLeaf[ri]];
      for (let j = 0; j < r.numQueries; j++) queryNode[q++] = leaf;
    });
    return { numNodes: N, parent, nodePos, nodeTokens, segBegin, segPage, segTokens, queryNode };
  }
}

/**
 * Forced boundaries of an explicit tree: per request, the page index where each node of its path
 * ends (ascending, zero-length nodes dropped), so explicit nodes stay nodes of the radix tree.
 */
export function explicitBounds(batch: Batch): Int32Array[] {
  const tree = batch.tree!;
  const n = tree.parent.length;
  const end = new Int32Array(n).fill(-1);
  const stack: number[] = [];
  for (let i = 0; i < n; i++) {
    let x = i;
    while (x !== -1 && end[x] === -1) {
      stack.push(x);
      x = tree.parent[x];
    }
    let base = x === -1 ? 0 : end[x];
    while (stack.length) {
      const y = stack.pop()!;
      base += tree.segBegin[y + 1] - tree.segBegin[y];
      end[y] = base;
    }
  }
  return batch.requests.map((_, r) => {
    const path: number[] = [];
    for (let x = tree.requestLeaf[r]; x !== -1; x = tree.parent[x]) path.push(end[x]);
    path.reverse();
    const out: number[] = [];
    for (const e of path) if (e > 0 && (out.length === 0 || out[out.length - 1] < e)) out.push(e);
    return Int32Array.from(out);
  });
}

/** Per request of the last optimistic build: matchSrc and matchEnd (module scratch, reused). */
let chkSrc = new Int32Array(0);
let chkEnd = new Int32Array(0);

/**
 * Build the radix tree of a batch (explicit tree boundaries kept when `batch.tree` is given).
 *
 * Without an explicit tree, every request is first inserted optimistically (insertChecked
 * without its check, remembering the deepest node's source and the matched prefix), and then,
 * in a second tight pass, each request's matched prefix is compared with that source's pages in
 * one go (PrefixCheck): one native compare after another over the batch's page lists (2.1 MB for
 * W5), not between tree updates (a little faster on W5 and tree1024). When every check passes,
 * the tree is exactly the one the checked build (each request checked before the next is
 * inserted) makes, node for node: the same insertions in the same order. When any check fails,
 * or the optimistic pass meets bad input (which the checked build reports on its own terms, for
 * the request it meets first), the tree is built again by the checked build (buildChecked): page
 * lists whose ids do not name their prefix then cost the optimistic pass in addition.
 */
export function buildRadix(batch: Batch, trustPageIds = false): RadixTree {
  if (batch.tree) {
    const t = newTree(batch);
    const bounds = explicitBounds(batch);
    for (let r = 0; r < t.reqLeaf.length; r++) t.insert(r, bounds[r]);
    t.recordLast();
    return t;
  }
  if (trustPageIds) {
    const t = newTree(batch);
    t.trustPageIds = true;
    // lastN/lastId/lastTok recorded right after each insertion, while the request's arrays are
    // in cache (a separate pass afterwards reads every request object again)
    t.allocLast();
    for (let r = 0; r < t.reqLeaf.length; r++) {
      t.insertChecked(r, false);
      t.recordLastOf(r);
    }
    return t;
  }
  const t = newTree(batch);
  const R = t.reqLeaf.length;
  if (chkSrc.length < R) {
    chkSrc = new Int32Array(Math.max(R, 2 * chkSrc.length, 64));
    chkEnd = new Int32Array(chkSrc.length);
  }
  const ms = chkSrc;
  const me = chkEnd;
  t.allocLast();
  try {
    for (let r = 0; r < R; r++) {
      t.insertChecked(r, false);
      t.recordLastOf(r);
      ms[r] = t.matchSrc;
      me[r] = t.matchEnd;
    }
  } catch {
    return buildChecked(batch);
  }
  const reqs = t.requests;
  let ok = true;
  prefixCheck.reset();
  for (let r = 0; r < R; r++) {
    const v = ms[r];
    if (v < 0) continue;
    const q = reqs[r];
    const w = reqs[v];
    if (!prefixCheck.equalPrefix(q.pageIds, q.pageTokens, w.pageIds, w.pageTokens, me[r])) {
      ok = false;
      break;
    }
  }
  prefixCheck.reset();
  return ok ? t : buildChecked(batch);
}

function newTree(batch: Batch): RadixTree {
  const R = batch.requests.length;
  const t = new RadixTree(batch.numPages, batch.pageSize, 2 * R + 16);
  t.requests = batch.requests.slice();
  t.reqLeaf = new Int32Array(R).fill(-1);
  return t;
}

/** The checked build: each request's matched prefix compared before the next is inserted, and a
 * request that differs inserted by the exact page-by-page walk (see insertChecked). */
function buildChecked(batch: Batch): RadixTree {
  const t = newTree(batch);
  t.allocLast();
  prefixCheck.reset();
  for (let r = 0; r < t.reqLeaf.length; r++) {
    t.insertChecked(r, true);
    t.recordLastOf(r);
  }
  prefixCheck.reset();
  return t;
}
