import { describe, expect, it } from 'vitest';
import { inboxCommand, moveSelection, reselect } from './inboxKeys';

describe('inbox keyboard', () => {
  it('maps keys to commands', () => {
    expect(inboxCommand({ key: 'j' })).toBe('next');
    expect(inboxCommand({ key: 'ArrowDown' })).toBe('next');
    expect(inboxCommand({ key: 'k' })).toBe('prev');
    expect(inboxCommand({ key: 'ArrowUp' })).toBe('prev');
    expect(inboxCommand({ key: 'a' })).toBe('approve');
    expect(inboxCommand({ key: 'd' })).toBe('deny');
    expect(inboxCommand({ key: 'e' })).toBe('edit');
    expect(inboxCommand({ key: 'Enter' })).toBe('open');
    expect(inboxCommand({ key: '?' })).toBe('help');
    expect(inboxCommand({ key: 'x' })).toBeNull();
  });

  it('leaves modified keys and text fields alone', () => {
    expect(inboxCommand({ key: 'a', ctrlKey: true })).toBeNull();
    expect(inboxCommand({ key: 'd', metaKey: true })).toBeNull();
    expect(inboxCommand({ key: 'a', inTextField: true })).toBeNull();
    expect(inboxCommand({ key: 'Enter', inTextField: true })).toBeNull(); // Enter confirms the deny form
    expect(inboxCommand({ key: 'Escape', inTextField: true })).toBe('escape');
  });

  it('moves the selection within the list', () => {
    expect(moveSelection(0, 3, 'next')).toBe(1);
    expect(moveSelection(2, 3, 'next')).toBe(2);
    expect(moveSelection(0, 3, 'prev')).toBe(0);
    expect(moveSelection(-1, 3, 'next')).toBe(0);
    expect(moveSelection(1, 3, 'last')).toBe(2);
    expect(moveSelection(1, 3, 'first')).toBe(0);
    expect(moveSelection(5, 3, 'approve')).toBe(2);
    expect(moveSelection(0, 0, 'next')).toBe(-1);
  });

  it('keeps the selection on the same approval when the list changes', () => {
    expect(reselect(['a', 'b', 'c'], 1, ['x', 'a', 'b', 'c'])).toBe(2);
    expect(reselect(['a', 'b', 'c'], 1, ['a', 'c'])).toBe(1); // b went: the next one takes its place
    expect(reselect(['a', 'b', 'c'], 2, ['a'])).toBe(0);
    expect(reselect(['a'], 0, [])).toBe(-1);
    expect(reselect([], -1, ['a'])).toBe(0);
  });
});
