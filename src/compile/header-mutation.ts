/** Compiled header mutations: Envoy's headers_to_add (append or overwrite) and headers_to_remove. */
import type { HeaderMutation } from '../model/route.js';
import type { MutableHeaders } from './request-view.js';

export type HeaderMutator = (headers: MutableHeaders) => void;

/** Returns null for an empty mutation so callers can skip it with one check. */
export function compileHeaderMutation(m: HeaderMutation): HeaderMutator | null {
  if (m.set.length === 0 && m.add.length === 0 && m.remove.length === 0) return null;
  const remove = m.remove.map((n) => n.toLowerCase());
  const set = m.set.map(([n, v]) => [n.toLowerCase(), v] as const);
  const add = m.add.map(([n, v]) => [n.toLowerCase(), v] as const);
  return (headers) => {
    for (const n of remove) headers.remove(n);
    for (const [n, v] of set) headers.set(n, v);
    for (const [n, v] of add) headers.addValue(n, v);
  };
}

/** Applies mutations in order, skipping nulls. */
export function chainMutators(...list: Array<HeaderMutator | null>): HeaderMutator | null {
  const present = list.filter((m): m is HeaderMutator => m !== null);
  if (present.length === 0) return null;
  if (present.length === 1) return present[0]!;
  return (headers) => {
    for (const m of present) m(headers);
  };
}
