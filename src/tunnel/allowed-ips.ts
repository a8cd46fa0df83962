// Cryptokey routing table: longest-prefix match from an address to a peer (whitepaper §2).
// A binary trie per family, walked straight from packet bytes without allocation.
import type { Cidr } from './cidr.js';

/** A prefix's identity in the trie: family, length and the bits that count (host bits ignored). */
function prefixKey(c: Cidr): string {
  let k = `${c.version}/${c.bits}/`;
  const full = c.bits >> 3;
  for (let i = 0; i < full; i++) k += String.fromCharCode(c.bytes[i]);
  if (c.bits & 7) k += String.fromCharCode(c.bytes[full] & (0xff << (8 - (c.bits & 7))) & 0xff);
  return k;
}

interface Node<T> {
  zero: Node<T> | null;
  one: Node<T> | null;
  value: T | null;
}

function newNode<T>(): Node<T> {
  return { zero: null, one: null, value: null };
}

export class AllowedIps<T> {
  private readonly v4: Node<T> = newNode();
  private readonly v6: Node<T> = newNode();
  /** Each holder's prefixes by key, in insertion order (O(1) per insert: a peer may hold 131,072). */
  private readonly prefixes = new Map<T, Map<string, Cidr>>();

  /** Maps `cidr` to `value`, taking it from any other holder (wg(8) semantics). */
  insert(cidr: Cidr, value: T): void {
    let n = cidr.version === 4 ? this.v4 : this.v6;
    for (let i = 0; i < cidr.bits; i++) {
      const bit = (cidr.bytes[i >> 3] >> (7 - (i & 7))) & 1;
      let next = bit ? n.one : n.zero;
      if (!next) {
        next = newNode();
        if (bit) n.one = next;
        else n.zero = next;
      }
      n = next;
    }
    const previous = n.value;
    if (previous !== null && previous !== value) this.forget(previous, cidr);
    n.value = value;
    let held = this.prefixes.get(value);
    if (!held) this.prefixes.set(value, (held = new Map()));
    const k = prefixKey(cidr);
    if (!held.has(k)) held.set(k, cidr);
  }

  /** Removes one prefix if `value` holds it. */
  remove(cidr: Cidr, value: T): void {
    let n: Node<T> | null = cidr.version === 4 ? this.v4 : this.v6;
    for (let i = 0; i < cidr.bits && n; i++) {
      const bit = (cidr.bytes[i >> 3] >> (7 - (i & 7))) & 1;
      n = bit ? n.one : n.zero;
    }
    if (n && n.value === value) {
      n.value = null;
      this.forget(value, cidr);
    }
  }

  /** Removes every prefix held by `value`. */
  removeValue(value: T): void {
    for (const c of [...(this.prefixes.get(value)?.values() ?? [])]) this.remove(c, value);
    this.prefixes.delete(value);
  }

  /** The prefixes `value` holds, in insertion order. */
  prefixesOf(value: T): readonly Cidr[] {
    const held = this.prefixes.get(value);
    return held ? [...held.values()] : [];
  }

  /** Longest-prefix match of the address at b[off] (4 or 16 bytes). */
  lookup(version: 4 | 6, b: Uint8Array, off: number): T | null {
    let n: Node<T> | null = version === 4 ? this.v4 : this.v6;
    const bits = version === 4 ? 32 : 128;
    let best: T | null = n.value;
    for (let i = 0; i < bits; i++) {
      const bit = (b[off + (i >> 3)] >> (7 - (i & 7))) & 1;
      n = bit ? n.one : n.zero;
      if (!n) break;
      if (n.value !== null) best = n.value;
    }
    return best;
  }

  private forget(value: T, cidr: Cidr): void {
    this.prefixes.get(value)?.delete(prefixKey(cidr));
  }
}
