// LabClient against the real CLI (OPSLAB_RUNNER_BIN; `make test-ts` sets it to the project's .venv):
// the scenario the Python SDK's e2e test drives — 2 variants, 4 tasks, 2 replications — built, run on a
// temporary copy of examples/lab-python, its comparison read back; then the ways a command fails.

import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ExperimentBuilder, LabClient, LabRunnerError, type RunResult } from '../src/index.js';
import { seedBuilder } from './seed.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const EXAMPLE = join(REPO, 'examples', 'lab-python');
const RUNNER = process.env['OPSLAB_RUNNER_BIN'] ?? join(REPO, '.venv', 'bin', 'opslab');
const skip = existsSync(RUNNER) ? false : `no opslab runner: set OPSLAB_RUNNER_BIN (tried ${RUNNER})`;

function scenario(): ExperimentBuilder {
  return ExperimentBuilder.create('sdk_ab', 'SDK A/B')
    .description('careful vs hasty arithmetic, from the TypeScript SDK')
    .datasetJsonl('./data/tasks.jsonl', { suiteId: 'arithmetic', splitId: 'dev', limit: 4 })
    .harnessCli(['python3', './harness.py'], { integrationLevel: 'cli_basic' })
    .replications(2)
    .randomSeed(7)
    .baseline('careful', { strategy: 'careful' })
    .addVariant('hasty', { strategy: 'hasty' })
    .primaryMetrics(['success', 'accuracy'])
    .secondaryMetrics(['latency_ms']);
}

async function rejection(promise: Promise<unknown>): Promise<LabRunnerError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof LabRunnerError, String(e));
    return e;
  }
  assert.fail('expected a LabRunnerError');
}

function script(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

describe('LabClient against the opslab CLI', { skip }, () => {
  let tmp: string;
  let project: string;
  let client: LabClient;
  let finished: RunResult;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'opslab-sdk-ts-'));
    project = join(tmp, 'proj');
    cpSync(EXAMPLE, project, { recursive: true, filter: (src) => !src.split('/').includes('.lab') });
    client = new LabClient({ runnerBin: RUNNER, cwd: project, timeoutMs: 300_000 });
    scenario().write(join(project, '.lab', 'sdk.yaml'));
    finished = await client.run({ experiment: '.lab/sdk.yaml', concurrency: 2 });
  });

  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('describes the built experiment', async () => {
    const { summary } = await client.describe({ experiment: '.lab/sdk.yaml' });
    assert.equal(summary.total_trials, 16);
    assert.deepEqual(summary.variants, ['careful', 'hasty']);
    assert.equal(summary.harness_script_exists, true);
    assert.equal(summary.dataset_path, join(project, 'data', 'tasks.jsonl'));
  });

  it('runs it and reads the comparison', () => {
    assert.equal(finished.command, 'run');
    assert.equal(finished.run.status, 'completed');
    assert.equal(finished.run.total_trials, 16);
    const c = finished.comparison;
    assert.ok(c);
    assert.equal(c.baseline, 'careful');
    assert.equal(c.variants['careful']?.n, 8);
    assert.equal(c.variants['careful']?.success_rate, 1);
    const [contrast] = c.comparisons;
    assert.equal(contrast?.treatment, 'hasty');
    assert.equal(contrast?.metrics['success']?.n_tasks, 4);
  });

  it('reads the trial records in plan order', () => {
    const trials = client.trials(finished.run.run_dir);
    assert.equal(trials.length, 16);
    assert.deepEqual(trials.slice(0, 2).map((t) => t.trial_id), ['trial_1', 'trial_2']);
    assert.ok(trials.filter((t) => t.variant_id === 'careful').every((t) => t.outcome === 'success'));
  });

  it('replays a trial and validates files', async () => {
    const { replay } = await client.replay({ runDir: finished.run.run_dir, trialId: 'trial_1', ignore: ['metrics.latency_ms'] });
    assert.equal(replay.matches, true);
    const { report } = await client.validateSchema({ file: join(finished.run.run_dir, 'trials', 'trial_1', 'trial_input.json'), schema: 'trial_input' });
    assert.equal(report.valid, true);
  });

  it("writes YAML the lab's schema accepts, awkward strings included", async () => {
    const awkward = seedBuilder()
      .description('yes: "quoted", no\nsecond line: # not a comment')
      .baseline('control', { prompt: 'null', n: '007', nested: { list: [1, 'on', null, { deep: true }] }, big: 1e21 });
    const path = awkward.write(join(project, '.lab', 'awkward.yaml'));
    const { report } = await client.validateSchema({ file: path, schema: 'experiment' });
    assert.equal(report.valid, true);
  });

  it('validates knobs as the seed calls it: validateKnobs({ manifest, overrides })', async () => {
    const knobs = join(project, '.lab', 'knobs');
    mkdirSync(knobs, { recursive: true });
    const manifest = join(knobs, 'custom-manifest.json');
    const overrides = join(knobs, 'ts-overrides.json');
    const knob = { id: 'design.replications', json_pointer: '/design/replications', type: 'integer', minimum: 1, maximum: 5 };
    writeFileSync(manifest, JSON.stringify({ knobs: [knob] }));
    // manifest_path names another file: the manifest given by name is the one checked
    writeFileSync(overrides, JSON.stringify({ manifest_path: 'elsewhere.json', values: { 'design.replications': 2 } }));
    const ok = await client.validateKnobs({ manifest, overrides, experiment: '.lab/sdk.yaml' });
    assert.equal(ok.manifest_path, manifest);
    assert.deepEqual(ok.knobs, ['design.replications']);
    writeFileSync(overrides, JSON.stringify({ values: { 'design.replications': 9 } }));
    const e = await rejection(client.validateKnobs({ manifest, overrides }));
    assert.equal(e.code, 'invalid_input');
    assert.match(e.message, /maximum/);
  });

  it('rejects a missing experiment with the code, exit code and command', async () => {
    const e = await rejection(client.describe({ experiment: '.lab/does-not-exist.yaml' }));
    assert.equal(e.code, 'invalid_input');
    assert.equal(e.exitCode, 2);
    assert.deepEqual(e.command, [RUNNER, 'lab', 'describe', '.lab/does-not-exist.yaml', '--json']);
    assert.match(e.message, /no such file/);
    assert.equal((e.details['errors'] as Array<{ field: string }>)[0]?.field, 'EXPERIMENT');
  });

  it('rejects a refusal with its details', async () => {
    const e = await rejection(client.pause({ runDir: finished.run.run_dir }));
    assert.equal(e.code, 'conflict');
    assert.equal(e.exitCode, 5);
    assert.equal(e.details['status'], 'completed');
  });

  it('rejects a runner that cannot start, speaks no JSON or hangs', async () => {
    const missing = await rejection(new LabClient({ runnerBin: join(tmp, 'no-such-opslab') }).describe());
    assert.equal(missing.code, 'runner_not_found');
    assert.equal(missing.exitCode, null);
    const broken = script(tmp, 'broken-opslab', "echo 'something went wrong' >&2\nexit 7");
    const crashed = await rejection(new LabClient({ runnerBin: broken }).describe());
    assert.equal(crashed.code, 'command_failed');
    assert.equal(crashed.exitCode, 7);
    assert.match(crashed.stderr, /something went wrong/);
    const slow = script(tmp, 'slow-opslab', 'sleep 30');
    const hung = await rejection(new LabClient({ runnerBin: slow, timeoutMs: 300 }).describe());
    assert.equal(hung.code, 'runner_timeout');
  });

  it('passes env to the runner and takes the runner from the environment', async () => {
    const echo = script(tmp, 'env-opslab', 'printf \'{"ok": false, "error": {"code": "x", "message": "%s"}}\' "$SDK_PROBE"\nexit 1');
    const e = await rejection(new LabClient({ runnerBin: echo, env: { SDK_PROBE: 'seen' } }).describe());
    assert.equal(e.message, 'seen');
    assert.equal(new LabClient().runnerBin, process.env['OPSLAB_RUNNER_BIN'] ?? process.env['AGENTLAB_RUNNER_BIN'] ?? 'opslab');
  });
});
