import { describe, expect, it } from 'vitest';
import { action } from '../test/fixtures';
import { actionTarget, commandLine, describeAction, ellipsize, holderShort, holderText } from './actions';
import { highlightCedar, isNetworkRule, policySections, splitStatements } from './cedar';
import { parseRoute, routeHash } from './router';

describe('actions', () => {
  it('describes actions briefly', () => {
    expect(describeAction(action({ kind: 'click', at: { x: 4, y: 5 }, button: 'left', count: 2, hold: null }))).toBe('double click (4, 5)');
    expect(describeAction(action({ kind: 'click', at: null, button: 'right', count: 1, hold: 'ctrl' }))).toBe('right click at the pointer holding ctrl');
    expect(describeAction(action({ kind: 'type', text: 'a\nb' }))).toBe('type “a⏎b”');
    expect(describeAction(action({ kind: 'write_file', path: '/root/a.txt', size: 2048, sha256: 'ab' }))).toMatch(/^write \/root\/a\.txt \(2(\.0)? ?K/);
    expect(describeAction(action({ kind: 'read_file', path: '/etc/hosts', size: 0 }))).toBe('read /etc/hosts');
    expect(describeAction(action({ kind: 'list_files', path: '/root' }))).toBe('list /root');
    expect(describeAction(action({ kind: 'scroll', at: { x: 1, y: 1 }, dx: 0, dy: 3, hold: null }))).toBe('scroll down 3 at (1, 1)');
    expect(describeAction(action({ kind: 'drag', path: [{ x: 0, y: 0 }, { x: 9, y: 9 }], button: 'left' }))).toBe('drag (0, 0) → (9, 9)');
    expect(describeAction(action({ kind: 'exec', argv: ['echo', 'hi there'], stdin: '', timeout_ms: 1 }))).toBe("exec echo 'hi there'");
    expect(describeAction(action({ kind: 'wait', duration_ms: 1500 }))).toBe('wait 1.5 s');
  });

  it('finds what to draw', () => {
    expect(actionTarget(action({ kind: 'click', at: { x: 4, y: 5 }, button: 'left', count: 1, hold: null }))).toMatchObject({ kind: 'point', at: { x: 4, y: 5 } });
    expect(actionTarget(action({ kind: 'drag', path: [{ x: 0, y: 0 }, { x: 9, y: 9 }], button: 'left' }))).toMatchObject({ kind: 'path', to: { x: 9, y: 9 } });
    expect(actionTarget(action({ kind: 'type', text: 'x' }))).toEqual({ kind: 'text', text: 'x' });
    expect(actionTarget(action({ kind: 'exec', argv: ['ls'], stdin: '', timeout_ms: 1 }))).toEqual({ kind: 'command', line: 'ls' });
    expect(actionTarget(action({ kind: 'screenshot' }))).toEqual({ kind: 'none' });
  });

  it('quotes command lines and cuts long text', () => {
    expect(commandLine(['sh', '-c', "echo 'x'", ''])).toBe(`sh -c 'echo '\\''x'\\''' ''`);
    expect(ellipsize('abcdef', 4)).toBe('abc…');
    expect(ellipsize('abc', 4)).toBe('abc');
  });

  it('words the holder', () => {
    expect(holderText({ holder: 'agent' }, 'ana')).toBe('Agent is driving');
    expect(holderText({ holder: 'human', operator: 'ana' }, 'ana')).toBe('You are in control');
    expect(holderText({ holder: 'human', operator: 'bo' }, 'ana')).toBe('bo is in control');
    expect(holderShort({ holder: 'paused', by: 'approval-expiry' })).toBe('paused');
  });
});

describe('routes', () => {
  it('parses and formats hash routes', () => {
    expect(parseRoute('')).toEqual({ view: 'grid' });
    expect(parseRoute('#/session/sb%201')).toEqual({ view: 'session', id: 'sb 1' });
    expect(parseRoute('#/session/')).toEqual({ view: 'grid' });
    expect(parseRoute('#/ledger')).toEqual({ view: 'ledger', id: null });
    expect(parseRoute('#/ledger/sb-2?x=1')).toEqual({ view: 'ledger', id: 'sb-2' });
    expect(parseRoute('#/inbox')).toEqual({ view: 'inbox' });
    expect(parseRoute('#/policy')).toEqual({ view: 'policy' });
    expect(parseRoute('#/nope')).toEqual({ view: 'grid' });
    expect(parseRoute('#/session/%E0%A4%A')).toEqual({ view: 'session', id: '%E0%A4%A' });
    expect(routeHash({ view: 'session', id: 'a/b' })).toBe('#/session/a%2Fb');
    expect(routeHash({ view: 'ledger', id: null })).toBe('#/ledger');
  });
});

describe('cedar highlighting', () => {
  it('emphasises annotations and keeps the text intact', () => {
    const src = '// c\n@id("exec-other")\n@ask("why")\npermit (principal, action == Action::"exec", resource) when { context.x like "*" };';
    const toks = highlightCedar(src);
    expect(toks.map((t) => t.text).join('')).toBe(src);
    expect(toks.find((t) => t.cls === 'comment')?.text).toBe('// c');
    expect(toks.filter((t) => t.cls === 'annotation').map((t) => t.text)).toEqual(['@id', '@ask']);
    expect(toks.filter((t) => t.cls === 'annotation-arg').map((t) => t.text)).toEqual(['"exec-other"', '"why"']);
    expect(toks.find((t) => t.cls === 'effect')?.text).toBe('permit');
    expect(toks.find((t) => t.cls === 'entity')?.text).toBe('Action::');
    expect(highlightCedar('"unterminated').map((t) => t.text).join('')).toBe('"unterminated');
  });
});

describe('policy sections', () => {
  const text = [
    '// header',
    '@id("look")',
    'permit (principal, action == Action::"screenshot", resource);',
    '',
    '// Network. An example in a comment: permit (principal, action == Action::"connect", resource);',
    '@id("new-destination")',
    '@ask("a connection; to somewhere new")',
    'permit (principal, action == Action::"connect", resource)',
    'when { !context.resolved }; // trailing',
    '',
    '@id("wipe")',
    'forbid (principal, action, resource) when { context.command like "*;*" };',
    '// the end',
    '',
  ].join('\n');

  it('cuts the text into statements that join back into it', () => {
    const parts = splitStatements(text);
    expect(parts).toHaveLength(3);
    expect(parts.join('')).toBe(text);
    expect(parts[1]).toContain('@ask("a connection; to somewhere new")');
    expect(parts[1]?.endsWith('// trailing\n')).toBe(true);
    expect(parts[2]?.endsWith('// the end\n')).toBe(true);
  });

  it('puts the rules about Action::"connect" under Network, judging code and not comments', () => {
    expect(isNetworkRule('// permit (principal, action == Action::"connect", resource);\npermit (principal, action, resource);')).toBe(false);
    const { actions, network, networkRules } = policySections(text);
    expect(networkRules).toBe(1);
    expect(network.startsWith('// Network.')).toBe(true);
    expect(network).toContain('@id("new-destination")');
    expect(actions).toContain('@id("look")');
    expect(actions).toContain('@id("wipe")');
    expect(actions).not.toContain('new-destination');
    expect(policySections('permit (principal, action, resource);')).toEqual({ actions: 'permit (principal, action, resource);', network: '', networkRules: 0 });
  });
});
