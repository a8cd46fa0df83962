// The data path's reused arrays: made empty in the elements kind they keep (objectArray), and emptied
// cheaply (clearArray).
//
// Emptying: `a.length = 0` is a call into V8's runtime even in
// optimised code and even when the array is already empty (~40 ns warm, several times that on a
// wake after idle, when its code is out of the caches); a flush empties half a dozen arrays per
// wake. pop() is inlined: for the few entries a sparse wake leaves it is 5x cheaper.
export function clearArray(a: unknown[]): void {
  const n = a.length;
  if (n === 0) return;
  if (n > 8) {
    a.length = 0;
    return;
  }
  for (let i = 0; i < n; i++) a.pop();
}

/**
 * An empty array already of V8's "objects" elements kind. `[]` starts as small integers and turns
 * into objects at its first push, per array: optimised code that learnt the warm-up devices' arrays
 * (tunnel/warm-up.ts), already turned, met the real device's untouched arrays with another map and
 * was deoptimised at the first real packets. An array made with an object in it keeps the kind
 * after the object is popped.
 */
export function objectArray<T>(): T[] {
  const a: (T | null)[] = [null];
  a.pop();
  return a as T[];
}
