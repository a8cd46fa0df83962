// DNS domains as configs and rosters name them: lower-case labels of letters, digits and inner hyphens.
const DOMAIN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Whether `s` can be a DNS domain for meshd's names (already lower-cased, no trailing dot). */
export function validDomain(s: string): boolean {
  return s.length <= 253 && DOMAIN.test(s);
}
