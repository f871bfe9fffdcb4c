/**
 * Mocha root hooks for `npm run test:runtimes` (loaded with --require): which tests started a
 * service on the runtime, and which ran in the test process alone, written as JSON to
 * SD_ACTIVATE_TEST_REPORT when mocha exits, with every test title of the files loaded.
 */
import { writeFileSync } from 'node:fs';
import type { Context, Suite } from 'mocha';
import { startedServices } from './runtime.js';

interface Seen {
  title: string;
  state: string;
  services: number;
}

const tests: Seen[] = [];
const titles: string[] = [];
let before = 0;

function collect(suite: Suite): void {
  for (const test of suite.tests) titles.push(test.fullTitle());
  for (const child of suite.suites) collect(child);
}

process.on('exit', () => {
  const file = process.env.SD_ACTIVATE_TEST_REPORT;
  if (file) writeFileSync(file, JSON.stringify({ tests, titles }));
});

export const mochaHooks = {
  beforeAll(this: Context): void {
    let suite = this.test?.parent;
    while (suite?.parent) suite = suite.parent;
    if (suite) collect(suite);
  },
  beforeEach(): void {
    before = startedServices();
  },
  afterEach(this: Context): void {
    const test = this.currentTest;
    if (test) tests.push({ title: test.fullTitle(), state: test.state ?? 'unknown', services: startedServices() - before });
  },
};
