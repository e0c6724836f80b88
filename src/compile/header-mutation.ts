/** Compiled header mutations: Envoy's headers_to_add (append or overwrite) and headers_to_remove. */
import type { HeaderMutation } from '../model/route.js';
import type { MutableHeaders } from './request-view.js';
import { utf8ByteString } from './string-matcher.js';

export type HeaderMutator = (headers: MutableHeaders) => void;

/** Returns null for an empty mutation so callers can skip it with one check. */
export function compileHeaderMutation(m: HeaderMutation): HeaderMutator | null {
  if (m.add.length === 0 && m.remove.length === 0) return null;
  const remove = m.remove.map((n) => n.toLowerCase());
  // Values go on the wire as UTF-8 bytes (headers are byte strings in the data path).
  const add = m.add.map((h) => ({ name: h.name.toLowerCase(), value: utf8ByteString(h.value), append: h.append }));
  // Envoy removes first, then adds in list order.
  return (headers) => {
    for (const n of remove) headers.remove(n);
    for (const h of add) {
      if (h.append) headers.addValue(h.name, h.value);
      else headers.set(h.name, h.value);
    }
  };
}
