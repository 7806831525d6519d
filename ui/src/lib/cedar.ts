// A light Cedar highlighter for reading policies: comments, annotations (@id, @ask and their
// strings, emphasised), effects, keywords, strings, entity names. Pure.

export interface Token {
  text: string;
  cls: 'comment' | 'annotation' | 'annotation-arg' | 'effect' | 'keyword' | 'string' | 'entity' | null;
}

const EFFECTS = new Set(['permit', 'forbid']);
const KEYWORDS = new Set([
  'when', 'unless', 'principal', 'action', 'resource', 'context', 'in', 'like', 'has', 'is', 'if', 'then', 'else',
  'true', 'false',
]);

export function highlightCedar(src: string): Token[] {
  const out: Token[] = [];
  const push = (text: string, cls: Token['cls']): void => {
    if (!text) return;
    const last = out[out.length - 1];
    if (last && last.cls === cls && cls === null) last.text += text;
    else out.push({ text, cls });
  };
  let i = 0;
  let afterAnnotation = false;
  while (i < src.length) {
    const c = src[i] as string;
    if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      const stop = end < 0 ? src.length : end;
      push(src.slice(i, stop), 'comment');
      i = stop;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      j = Math.min(src.length, j + 1);
      push(src.slice(i, j), afterAnnotation ? 'annotation-arg' : 'string');
      i = j;
      continue;
    }
    if (c === '@') {
      const m = /^@[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
      if (m) {
        push(m[0], 'annotation');
        i += m[0].length;
        afterAnnotation = true;
        continue;
      }
    }
    if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*(::)?/.exec(src.slice(i));
      const w = m ? m[0] : c;
      if (w.includes('::')) push(w, 'entity');
      else if (EFFECTS.has(w)) push(w, 'effect');
      else if (KEYWORDS.has(w)) push(w, 'keyword');
      else push(w, null);
      i += w.length;
      afterAnnotation = false;
      continue;
    }
    if (c === ')') afterAnnotation = false;
    push(c, null);
    i++;
  }
  return out;
}
