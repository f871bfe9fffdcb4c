import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { codeBlocks, commandLines, commentOf, inlineCode, shellWords, swapPorts } from './markdown.js';
import { tempDir } from './support.js';

describe('package: reading commands and code out of Markdown', function () {
  it('shellWords reads a command line as sh does', function () {
    expect(shellWords(`npx a -l 'web=tcp:[::1]:1' "b c" \\\n  d # comment`)).to.deep.equal(['npx', 'a', '-l', 'web=tcp:[::1]:1', 'b c', 'd']);
    expect(shellWords('a#b c')).to.deep.equal(['a#b', 'c']);
    expect(() => shellWords("a 'b")).to.throw(/unclosed/);
  });

  it('commandLines keeps a backslash-continued command whole and drops blank lines', function () {
    expect(commandLines({ text: 'a \\\n  b\n\nc # x\n' })).to.deep.equal(['a \\\n  b', 'c # x']);
  });

  it('commentOf is what follows a # that starts a word, outside quotes', function () {
    expect(commentOf('curl http://x/   # v1 4242')).to.equal('v1 4242');
    expect(commentOf("echo 'a # b' c")).to.equal('');
    expect(commentOf('a#b')).to.equal('');
  });

  it('swapPorts replaces a port where it stands as a number of its own', function () {
    const ports = new Map([[8080, 40001]]);
    expect(swapPorts('-l http=8080 127.0.0.1:8080 port: 8080 18080 80801 1.8080', ports)).to.equal('-l http=40001 127.0.0.1:40001 port: 40001 18080 80801 1.8080');
  });

  it('codeBlocks finds each fenced block with its language, line and heading; inlineCode the spans outside them', function () {
    const file = join(tempDir('md-'), 'README.md');
    writeFileSync(file, '# Top\n\n```js\nx();\n```\n\n## Use `it`\n\nRun `a b`:\n\n```sh\nnpm test\n```\n');
    expect(codeBlocks(file)).to.deep.equal([
      { lang: 'js', text: 'x();\n', line: 3, heading: 'Top' },
      { lang: 'sh', text: 'npm test\n', line: 11, heading: 'Use `it`' },
    ]);
    expect(inlineCode(file)).to.deep.equal(['it', 'a b']);
    writeFileSync(file, '```sh\nopen\n');
    expect(() => codeBlocks(file)).to.throw(/never closes/);
  });
});
