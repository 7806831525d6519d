import { describe, expect, it } from 'vitest';
import type { FileEntry } from './api/types';
import { baseName, breadcrumbs, dispositionName, downloadName, joinPath, normalize, parentOf, sizeText, sortEntries } from './files';

const e = (name: string, kind: FileEntry['kind']): FileEntry => ({ name, kind, size: 1, mode: 0o644, mtime_s: 0 });

describe('sandbox paths', () => {
  it('joins, climbs and names paths', () => {
    expect(normalize('//root/./Downloads/')).toBe('/root/Downloads');
    expect(joinPath('/root', 'a.txt')).toBe('/root/a.txt');
    expect(joinPath('/', 'etc')).toBe('/etc');
    expect(parentOf('/root/Downloads')).toBe('/root');
    expect(parentOf('/')).toBe('/');
    expect(baseName('/root/report.pdf')).toBe('report.pdf');
    expect(baseName('/')).toBe('/');
  });

  it('breaks a directory into breadcrumbs from the root', () => {
    expect(breadcrumbs('/root/Downloads')).toEqual([
      { label: '/', path: '/' },
      { label: 'root', path: '/root' },
      { label: 'Downloads', path: '/root/Downloads' },
    ]);
    expect(breadcrumbs('/')).toEqual([{ label: '/', path: '/' }]);
  });

  it('lists folders first, then by name', () => {
    expect(sortEntries([e('b.txt', 'file'), e('zeta', 'dir'), e('a.txt', 'file'), e('alpha', 'dir')]).map((x) => x.name)).toEqual([
      'alpha',
      'zeta',
      'a.txt',
      'b.txt',
    ]);
  });

  it('words sizes', () => {
    expect(sizeText(512)).toBe('512 B');
    expect(sizeText(1536)).toBe('1.5 KiB');
    expect(sizeText(1024 ** 3)).toBe('1.0 GiB');
  });

  it('takes the download name from Content-Disposition, else from the path (a folder as .tar)', () => {
    expect(dispositionName('attachment; filename="Downloads.tar"')).toBe('Downloads.tar');
    expect(dispositionName("attachment; filename=\"x\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")).toBe('résumé.pdf');
    expect(dispositionName('attachment; filename=plain.txt')).toBe('plain.txt');
    expect(dispositionName(null)).toBeNull();
    expect(downloadName('/root/Downloads', true)).toBe('Downloads.tar');
    expect(downloadName('/root/a.txt', false)).toBe('a.txt');
  });
});
