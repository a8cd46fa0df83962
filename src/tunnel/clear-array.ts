// Emptying the data path's reused arrays. `a.length = 0` is a call into V8's runtime even in
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
