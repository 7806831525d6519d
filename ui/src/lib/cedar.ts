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

/**
 * The policy text cut into statements: each piece runs from the end of the previous statement to
 * the `;` that ends its own (with the rest of that line), so the comments and annotations above a
 * rule travel with it and the pieces joined give back the text. Text after the last statement
 * (comments) joins the last piece. Pure.
 */
export function splitStatements(src: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      i = end < 0 ? src.length : end;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      i = j + 1;
      continue;
    }
    if (c === ';') {
      let end = i + 1;
      const nl = src.indexOf('\n', end);
      // The rest of the line (a trailing comment, spaces) stays with the statement.
      if (nl >= 0 && src.slice(end, nl).trim().replace(/^\/\/.*$/, '') === '') end = nl + 1;
      else if (nl < 0 && src.slice(end).trim() === '') end = src.length;
      out.push(src.slice(start, end));
      start = end;
      i = end;
      continue;
    }
    i++;
  }
  const rest = src.slice(start);
  if (rest !== '') {
    if (out.length > 0 && stripComments(rest).trim() === '') out[out.length - 1] += rest;
    else out.push(rest);
  }
  return out;
}

/** The text without its `//` comments (strings kept). */
export function stripComments(src: string): string {
  return highlightCedar(src)
    .filter((t) => t.cls !== 'comment')
    .map((t) => t.text)
    .join('');
}

/** Whether a statement is a network rule: its code (not its comments) names `Action::"connect"`. */
export function isNetworkRule(statement: string): boolean {
  return /Action::\s*"connect"/.test(stripComments(statement));
}

/** The policy split into the rules about agent actions and the network rules, each in its order. */
export function policySections(src: string): { actions: string; network: string; networkRules: number } {
  let actions = '';
  let network = '';
  let networkRules = 0;
  for (const s of splitStatements(src)) {
    if (isNetworkRule(s)) {
      network += s;
      networkRules++;
    } else actions += s;
  }
  const trimStart = (t: string): string => t.replace(/^\s*\n/, '');
  return { actions: trimStart(actions), network: trimStart(network), networkRules };
}
