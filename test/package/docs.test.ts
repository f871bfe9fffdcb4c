/**
 * The documentation that ships in the package: the README lists every error code the library can
 * throw, with what to do about it, and the CHANGELOG keeps the Keep a Changelog form.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './support.js';

/** The literal codes of SystemdErrorCode, from the declarations users compile against. */
function errorCodes(): string[] {
  const declarations = readFileSync(join(root, 'dist', 'src', 'core', 'errors.d.ts'), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  const union = /export type SystemdErrorCode =([\s\S]*?);/.exec(declarations)?.[1];
  if (!union) throw new Error('SystemdErrorCode not found in dist/src/core/errors.d.ts');
  return [...union.matchAll(/['"](ERR_SD_[A-Z0-9_]+)['"]/g)].map((m) => m[1]!);
}

/** Table rows of the README that start with a code: `| \`ERR_SD_X\` | when | what to do |`. */
function readmeRows(): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of readFileSync(join(root, 'README.md'), 'utf8').split('\n')) {
    const match = /^\|\s*`(ERR_SD_[A-Z0-9_]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (match) rows.set(match[1]!, match[2]!.split('|').map((cell) => cell.trim()));
  }
  return rows;
}

describe('package: documentation', function () {
  it('the README lists every SystemdErrorCode, each with when it happens and what to do', function () {
    const codes = errorCodes();
    expect(codes.length).to.be.above(5);
    const rows = readmeRows();
    expect(codes.filter((code) => !rows.has(code)), 'codes the README does not list').to.deep.equal([]);
    for (const code of codes) {
      const cells = rows.get(code)!;
      expect(cells, code).to.have.length(2);
      expect(cells[0], `${code}: when`).to.not.equal('');
      expect(cells[1], `${code}: what to do`).to.not.equal('');
    }
    expect([...rows.keys()].filter((code) => !codes.includes(code)), 'codes the README lists that do not exist').to.deep.equal([]);
  });

  it('the CHANGELOG keeps the Keep a Changelog form', function () {
    const text = readFileSync(join(root, 'CHANGELOG.md'), 'utf8');
    const lines = text.split('\n');
    expect(lines[0]).to.equal('# Changelog');
    expect(text).to.include('https://keepachangelog.com/en/1.1.0/');
    const versions = lines.filter((line) => line.startsWith('## '));
    expect(versions[0]).to.equal('## [Unreleased]');
    for (const heading of versions.slice(1)) expect(heading).to.match(/^## \[\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?\] - \d{4}-\d{2}-\d{2}$/);
    const kinds = new Set(['Added', 'Changed', 'Deprecated', 'Removed', 'Fixed', 'Security']);
    let seen = new Set<string>();
    for (const line of lines) {
      if (line.startsWith('## ')) seen = new Set();
      if (!line.startsWith('### ')) continue;
      const kind = line.slice(4);
      expect(kinds.has(kind), `"${line}" is not a Keep a Changelog section`).to.equal(true);
      expect(seen.has(kind), `"${line}" twice under one version`).to.equal(false);
      seen.add(kind);
    }
  });
});
