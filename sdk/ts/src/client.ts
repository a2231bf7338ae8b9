/**
 * LabClient: the `opslab lab` commands from TypeScript, each run as `opslab lab <cmd> … --json`.
 *
 * Every method takes the seed's option object, maps it to the command's flags, and resolves to the
 * envelope, typed; a command that fails rejects with `LabRunnerError`. After a run the client reads the
 * comparison the run wrote (`analysis/comparison.json`) into `result.comparison`.
 *
 * The runner: `runnerBin`, else `OPSLAB_RUNNER_BIN` (or the seed's `AGENTLAB_RUNNER_BIN`), else
 * `opslab` on PATH. Each command runs in its own process group, killed whole on timeout.
 */

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

import { errorOf, LabRunnerError, parseObject } from './errors.js';
import type {
  Bindings,
  Comparison,
  DescribeResult,
  ForkResult,
  HooksValidation,
  KnobsValidation,
  PauseResult,
  PublishResult,
  ReplayResult,
  ResumeResult,
  RunInfo,
  RunResult,
  SchemaValidation,
  TrialRecord,
} from './types.js';

/** A deadline still: a lab run may take hours, a hung runner should end one day. */
export const DEFAULT_TIMEOUT_MS = 24 * 3600 * 1000;
const KILL_GRACE_MS = 2000;

export interface LabClientOptions {
  /** The opslab executable (default: OPSLAB_RUNNER_BIN, AGENTLAB_RUNNER_BIN, then `opslab` on PATH). */
  runnerBin?: string;
  /** Where commands run (default: process.cwd()); relative paths in options resolve against it. */
  cwd?: string;
  /** Added to this process's environment for the runner (and, filtered, the harness). */
  env?: Record<string, string>;
  /** Per command (default: a day). */
  timeoutMs?: number;
}

export interface ExperimentArgs {
  experiment?: string;
  overrides?: string;
}

export interface RunArgs extends ExperimentArgs {
  concurrency?: number;
  resume?: string;
  reportTo?: string;
}

export interface RunOptions extends RunArgs {
  retryErrors?: boolean;
  container?: boolean;
}

export interface RunDevOptions extends RunArgs {
  setup?: string;
}

type Flag = string | number | boolean | undefined | null;

/** `--flag value` for a value, `--flag` for true, nothing for undefined/null/false. */
function flags(pairs: Array<[string, Flag]>): string[] {
  return pairs.flatMap(([flag, value]) => {
    if (value === undefined || value === null || value === false) return [];
    return value === true ? [flag] : [flag, String(value)];
  });
}

export function findRunner(runnerBin?: string, env: NodeJS.ProcessEnv = process.env): string {
  return runnerBin ?? env['OPSLAB_RUNNER_BIN'] ?? env['AGENTLAB_RUNNER_BIN'] ?? 'opslab';
}

export class LabClient {
  readonly runnerBin: string;
  readonly cwd: string;
  readonly env: Record<string, string> | undefined;
  readonly timeoutMs: number;

  constructor(options: LabClientOptions = {}) {
    this.runnerBin = findRunner(options.runnerBin);
    this.cwd = options.cwd ?? process.cwd();
    this.env = options.env;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Dry run: the resolved experiment, its trial plan and its isolation (checked), nothing executed
   * (`container`: as `run` with `container` would run it). */
  describe(args: ExperimentArgs & { container?: boolean } = {}): Promise<DescribeResult> {
    const rest = flags([['--overrides', args.overrides], ['--container', args.container]]);
    return this.call('describe', [args.experiment ?? '.lab/experiment.yaml', ...rest]);
  }

  /** Every trial locally with the configured network (`container`: in runtime.sandbox.image). */
  run(args: RunOptions = {}): Promise<RunResult> {
    return this.runCommand('run', args, [
      ['--retry-errors', args.retryErrors],
      ['--container', args.container],
    ]);
  }

  /** Iterate: network forced to full, trials in the container, `setup` run there first. */
  runDev(args: RunDevOptions = {}): Promise<RunResult> {
    return this.runCommand('run-dev', args, [['--setup', args.setup]]);
  }

  /** Strict: network mode must be `none`, trials in the container. */
  runExperiment(args: RunArgs = {}): Promise<RunResult> {
    return this.runCommand('run-experiment', args, []);
  }

  /** Re-execute a trial from its artifacts and compare outcome, metrics and result. */
  replay(args: { runDir: string; trialId: string; ignore?: string[] }): Promise<ReplayResult> {
    const ignore = (args.ignore ?? []).flatMap((field) => ['--ignore', field]);
    return this.call('replay', ['--run-dir', args.runDir, '--trial-id', args.trialId, ...ignore]);
  }

  /** A new trial from a checkpoint of `fromTrial` (`at`: a label, `last` or an index), its bindings
   * overridden (each a `--set key=<JSON>`; dotted keys nest). */
  fork(args: { runDir: string; fromTrial: string; at: string | number; bindings?: Bindings }): Promise<ForkResult> {
    const sets = Object.entries(args.bindings ?? {}).flatMap(([key, value]) => ['--set', `${key}=${JSON.stringify(value)}`]);
    return this.call('fork', ['--run-dir', args.runDir, '--from-trial', args.fromTrial, '--at', String(args.at), ...sets]);
  }

  /** No new trial starts; running trials finish. */
  pause(args: { runDir: string; reason?: string }): Promise<PauseResult> {
    return this.call('pause', ['--run-dir', args.runDir, ...flags([['--reason', args.reason]])]);
  }

  /** No trial starts again; running trials finish and the run ends `stopped`. */
  stop(args: { runDir: string; reason?: string }): Promise<PauseResult> {
    return this.call('stop', ['--run-dir', args.runDir, ...flags([['--reason', args.reason]])]);
  }

  /** Resume a paused run; with no runner holding it, its remaining trials run in this call. */
  async resume(args: { runDir: string; concurrency?: number; reason?: string }): Promise<ResumeResult> {
    const argv = ['--run-dir', args.runDir, ...flags([['--concurrency', args.concurrency], ['--reason', args.reason]])];
    const result = await this.call<ResumeResult>('resume', argv);
    return { ...result, comparison: result.run ? this.comparison(result.run.run_dir) : null };
  }

  /** A debug bundle (tar.gz) of the run, secrets redacted. */
  publish(args: { runDir: string; output?: string }): Promise<PublishResult> {
    return this.call('publish', ['--run-dir', args.runDir, ...flags([['--output', args.output]])]);
  }

  /**
   * The overrides (default .lab/knobs/overrides.json) against `manifest` (default: the knob manifest
   * the overrides name), as the seed calls it: `validateKnobs({ manifest, overrides })`.
   */
  validateKnobs(args: { manifest?: string; overrides?: string; experiment?: string } = {}): Promise<KnobsValidation> {
    return this.call(
      'knobs-validate',
      flags([['--manifest', args.manifest], ['--overrides', args.overrides], ['--experiment', args.experiment]]),
    );
  }

  /** An event stream (harness_events.jsonl) against the harness manifest. */
  validateHooks(args: { events: string; manifest?: string }): Promise<HooksValidation> {
    return this.call('validate-hooks', ['--events', args.events, ...flags([['--manifest', args.manifest]])]);
  }

  /** A JSON, YAML or JSON Lines file against one of the lab's schemas (trial_input, experiment, …). */
  validateSchema(args: { file: string; schema: string }): Promise<SchemaValidation> {
    return this.call('validate-schema', [args.file, '--schema', args.schema]);
  }

  /** `analysis/comparison.json` of a run, or null before the run was analysed. */
  comparison(runDir: string): Comparison | null {
    const path = join(this.path(runDir), 'analysis', 'comparison.json');
    return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Comparison) : null;
  }

  /** Every finished trial of a run (`trials/<id>/trial_output.json`), in plan order. */
  trials(runDir: string): TrialRecord[] {
    const dir = join(this.path(runDir), 'trials');
    const order = (name: string): number => Number(name.split('_').pop()) || Number.MAX_SAFE_INTEGER;
    return readdirSync(dir)
      .filter((name) => existsSync(join(dir, name, 'trial_output.json')))
      .sort((a, b) => order(a) - order(b) || a.localeCompare(b))
      .map((name) => JSON.parse(readFileSync(join(dir, name, 'trial_output.json'), 'utf8')) as TrialRecord);
  }

  private async runCommand(command: string, args: RunArgs, extra: Array<[string, Flag]>): Promise<RunResult> {
    const argv = [
      args.experiment ?? '.lab/experiment.yaml',
      ...flags([
        ['--concurrency', args.concurrency],
        ['--overrides', args.overrides],
        ['--resume', args.resume],
        ['--report-to', args.reportTo],
        ...extra,
      ]),
    ];
    const result = await this.call<{ ok: true; command: string; run: RunInfo }>(command, argv);
    return { ...result, comparison: this.comparison(result.run.run_dir) };
  }

  private path(path: string): string {
    return isAbsolute(path) ? path : resolve(this.cwd, path);
  }

  private async call<T>(command: string, args: string[]): Promise<T> {
    const argv = [this.runnerBin, 'lab', command, ...args, '--json'];
    const { code, stdout, stderr, startError, timedOut } = await this.spawn(argv);
    if (startError) throw new LabRunnerError('runner_not_found', `could not start ${JSON.stringify(this.runnerBin)}: ${startError}`, {}, null, '', argv);
    if (timedOut) {
      throw new LabRunnerError('runner_timeout', `${command} did not finish within ${this.timeoutMs} ms and was stopped`, { timeout_ms: this.timeoutMs }, null, stderr.slice(-4000), argv);
    }
    const envelope = parseObject(stdout);
    if (code !== 0 || envelope === null || envelope['ok'] !== true) throw errorOf(argv, code, stdout, stderr);
    return envelope as T;
  }

  private spawn(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string; startError: string | null; timedOut: boolean }> {
    const [file, ...args] = argv as [string, ...string[]];
    return new Promise((resolveSpawn) => {
      let settled = false;
      const done: typeof resolveSpawn = (value) => {
        if (!settled) resolveSpawn(value);
        settled = true;
      };
      const child = spawn(file, args, {
        cwd: this.cwd,
        env: this.env ? { ...process.env, ...this.env } : process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true, // its own process group: a timeout kills the runner and its trials together
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      let startError: string | null = null;
      const killGroup = (signal: NodeJS.Signals): void => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, signal);
        } catch {
          // already gone
        }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup('SIGTERM');
        setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS).unref();
      }, this.timeoutMs);
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      child.on('error', (e) => {
        startError = e.message;
        if (child.pid === undefined) {
          // never started: no 'close' is owed
          clearTimeout(timer);
          done({ code: null, stdout: '', stderr: '', startError, timedOut: false });
        }
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        done({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), startError, timedOut });
      });
    });
  }
}
