// Cryptokey routing table: longest-prefix match from an address to a peer (whitepaper §2).
// A binary trie per family, walked straight from packet bytes without allocation.
import { cidrEqual, type Cidr } from './cidr.js';

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
  private readonly prefixes = new Map<T, Cidr[]>();

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
    const list = this.prefixes.get(value) ?? [];
    if (!list.some((c) => cidrEqual(c, cidr))) list.push(cidr);
    this.prefixes.set(value, list);
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
    for (const c of [...(this.prefixes.get(value) ?? [])]) this.remove(c, value);
    this.prefixes.delete(value);
  }

  /** The prefixes `value` holds, in insertion order. */
  prefixesOf(value: T): readonly Cidr[] {
    return this.prefixes.get(value) ?? [];
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
    const list = this.prefixes.get(value);
    if (!list) return;
    const i = list.findIndex((c) => cidrEqual(c, cidr));
    if (i >= 0) list.splice(i, 1);
  }
}
