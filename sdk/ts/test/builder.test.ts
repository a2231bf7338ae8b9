// ExperimentBuilder and the YAML emitter, without a runner (client.test.ts has the CLI read them back).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ExperimentBuilder, InvalidExperimentError, relativeToFile, toYaml } from '../src/index.js';
import { seedBuilder } from './seed.js';

function refusedField(build: () => unknown): string {
  try {
    build();
  } catch (e) {
    assert.ok(e instanceof InvalidExperimentError, String(e));
    assert.equal(e.code, 'invalid_input');
    assert.ok(e.message.startsWith(`${e.field}:`));
    return e.field;
  }
  assert.fail('expected an InvalidExperimentError');
}

describe('ExperimentBuilder', () => {
  it("builds the seed's example", () => {
    const c = seedBuilder().build();
    assert.equal(c.experiment.id, 'prompt_ab');
    assert.deepEqual(c.dataset, { path: '../data/tasks.jsonl', suite_id: 'coding_tasks', split_id: 'dev', limit: 50 });
    assert.deepEqual(c.runtime.harness, { command: ['node', './src/harness/run-trial.js'], integration_level: 'cli_events' });
    assert.equal(c.design.replications, 3);
    assert.deepEqual(c.variants.treatments, [{ id: 'treatment', bindings: { model: 'gpt-4o', temperature: 0.7 } }]);
    assert.deepEqual(c.runtime.network, { mode: 'allowlist_enforced', allowed_hosts: ['api.openai.com'] });
  });

  it('rewrites the dataset path for the folder the YAML lands in', () => {
    assert.equal(relativeToFile('./data/tasks.jsonl', '.lab'), '../data/tasks.jsonl');
    assert.equal(relativeToFile('data/tasks.jsonl', '.'), 'data/tasks.jsonl');
    assert.equal(relativeToFile('data/tasks.jsonl', 'exps/ab'), '../../data/tasks.jsonl');
    assert.equal(relativeToFile('/srv/tasks.jsonl', '.lab'), '/srv/tasks.jsonl');
    assert.equal(seedBuilder().build({ experimentDir: '.' }).dataset.path, 'data/tasks.jsonl');
  });

  it('writes block YAML with the harness command and variants', () => {
    const text = seedBuilder().toYaml();
    assert.match(text, /^experiment:\n {2}id: prompt_ab\n {2}name: "Prompt A\/B Test"\n/);
    assert.match(text, /\n {2}harness:\n {4}command:\n {6}- node\n {6}- "\.\/src\/harness\/run-trial\.js"\n/);
    assert.match(text, /\n {2}treatments:\n {4}- id: treatment\n {6}bindings:\n {8}model: gpt-4o\n {8}temperature: 0\.7\n/);
    assert.match(text, /\n {4}allowed_hosts:\n {6}- api\.openai\.com\n/);
  });

  it('names the field of each refused value', () => {
    assert.equal(refusedField(() => seedBuilder().replications(0).build()), 'design.replications');
    assert.equal(refusedField(() => seedBuilder().replications(1.5).build()), 'design.replications');
    assert.equal(refusedField(() => seedBuilder().addVariant('control').toYaml()), 'variants');
    assert.equal(refusedField(() => seedBuilder().addVariant('has space').build()), 'variants.treatments[1].id');
    assert.equal(refusedField(() => seedBuilder().datasetJsonl('d.jsonl', { limit: 0 }).build()), 'dataset.limit');
    assert.equal(refusedField(() => seedBuilder().envAllow(['NOT-A-NAME']).build()), 'runtime.env_allow');
    assert.equal(refusedField(() => ExperimentBuilder.create('no spaces', 'X').datasetJsonl('t').harnessCli(['x']).baseline('a').build()), 'experiment.id');
  });

  it('names everything missing, the baseline included', () => {
    try {
      ExperimentBuilder.create('x', 'X').addVariant('b').build();
      assert.fail('built without a baseline');
    } catch (e) {
      assert.ok(e instanceof InvalidExperimentError);
      assert.deepEqual(
        e.errors.map((x) => x.field),
        ['dataset.path', 'runtime.harness.command', 'variants.baseline'],
      );
    }
  });
});

describe('toYaml', () => {
  it('quotes what a YAML 1.1 parser would read as something else', () => {
    assert.equal(toYaml({ a: 'yes', b: 'No', c: 'null', d: '007', e: '1.5', f: '', g: 'x: y', h: '~' }), [
      'a: "yes"', 'b: "No"', 'c: "null"', 'd: "007"', 'e: "1.5"', 'f: ""', 'g: "x: y"', 'h: "~"', '',
    ].join('\n'));
    assert.equal(toYaml({ s: 'line\n"two"', u: 'é ✓' }), 's: "line\\n\\"two\\""\nu: "é ✓"\n');
  });

  it('writes floats in exponent form with a decimal point, and refuses non-finite numbers', () => {
    assert.equal(toYaml({ big: 1e21, small: 1.5e-7, int: 3, neg: -0.25 }), 'big: 1.0e+21\nsmall: 1.5e-7\nint: 3\nneg: -0.25\n');
    assert.throws(() => toYaml({ x: Number.NaN }), TypeError);
  });

  it('nests sequences and mappings, empty ones inline', () => {
    assert.equal(toYaml({ a: [], b: {}, c: [[1, 2], { k: [true, null] }] }), [
      'a: []', 'b: {}', 'c:', '  - - 1', '    - 2', '  - k:', '      - true', '      - null', '',
    ].join('\n'));
  });
});
