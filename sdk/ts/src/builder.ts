/**
 * ExperimentBuilder: `.lab/experiment.yaml` written in code — the seed's builder, method for method.
 *
 * Paths given to the builder are relative to the project root (the parent of `.lab/`). The lab reads
 * the dataset path relative to the folder holding the YAML, so `toYaml()` rewrites it for the folder
 * the file goes to: `.lab/` by default, or whatever `write(path)` is given. The harness command runs
 * from the project root either way and is written as given.
 *
 * `build()` checks what the lab would refuse (the same rules as its config model) and throws an
 * `InvalidExperimentError` naming the field; the CLI validates again when it reads the file.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, posix, relative, resolve } from 'node:path';

import { InvalidExperimentError } from './errors.js';
import type {
  Bindings,
  ExperimentConfig,
  IntegrationLevel,
  MetricKind,
  NetworkMode,
  SanitizationProfile,
  VariantSpec,
  WorkloadType,
} from './types.js';
import { toYaml, type JsonValue } from './yaml.js';

const ID = /^[A-Za-z0-9_.-]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NETWORK_MODES: readonly NetworkMode[] = ['none', 'allowlist_enforced', 'full'];
const LEVELS: readonly IntegrationLevel[] = ['cli_basic', 'cli_events', 'otel', 'sdk_control', 'sdk_full'];
const PROFILES: readonly SanitizationProfile[] = ['hermetic_functional_v2', 'passthrough'];
const WORKLOADS: readonly WorkloadType[] = ['agent_harness', 'trainer'];

export interface DatasetOptions {
  suiteId?: string;
  splitId?: string;
  limit?: number;
}

export interface HarnessOptions {
  integrationLevel?: IntegrationLevel;
}

export interface YamlOptions {
  /** The folder the YAML goes to, relative to the project root (default `.lab`). */
  experimentDir?: string;
}

export class ExperimentBuilder {
  private readonly config: ExperimentConfig;
  private datasetPath: string | null = null;
  private baselineVariant: VariantSpec | null = null;
  private readonly treatments: VariantSpec[] = [];

  private constructor(id: string, name: string) {
    this.config = {
      experiment: { id, name, description: '', workload_type: 'agent_harness' },
      dataset: { path: '', suite_id: 'default', split_id: 'dev', limit: null },
      design: { replications: 1, random_seed: 0, sanitization_profile: 'hermetic_functional_v2', trial_timeout_s: 600 },
      runtime: {
        harness: { command: [], integration_level: 'cli_basic' },
        sandbox: { image: null },
        network: { mode: 'none', allowed_hosts: [] },
        env_allow: [],
      },
      variants: { baseline: { id: '', bindings: {} }, treatments: [] },
      analysis: { primary_metrics: ['success'], secondary_metrics: [] },
    };
  }

  static create(id: string, name: string): ExperimentBuilder {
    return new ExperimentBuilder(id, name);
  }

  description(text: string): this {
    this.config.experiment.description = text;
    return this;
  }

  workloadType(kind: WorkloadType): this {
    this.config.experiment.workload_type = kind;
    return this;
  }

  /** The tasks: JSON Lines, a `task_id` on each line; `path` relative to the project root. */
  datasetJsonl(path: string, options: DatasetOptions = {}): this {
    this.datasetPath = path;
    const d = this.config.dataset;
    if (options.suiteId !== undefined) d.suite_id = options.suiteId;
    if (options.splitId !== undefined) d.split_id = options.splitId;
    if (options.limit !== undefined) d.limit = options.limit;
    return this;
  }

  /** Your program, run once per trial from the project root: `['python3', './harness.py']`. */
  harnessCli(command: string[], options: HarnessOptions = {}): this {
    this.config.runtime.harness.command = [...command];
    if (options.integrationLevel !== undefined) this.config.runtime.harness.integration_level = options.integrationLevel;
    return this;
  }

  sanitizationProfile(profile: SanitizationProfile): this {
    this.config.design.sanitization_profile = profile;
    return this;
  }

  replications(n: number): this {
    this.config.design.replications = n;
    return this;
  }

  randomSeed(seed: number): this {
    this.config.design.random_seed = seed;
    return this;
  }

  trialTimeout(seconds: number): this {
    this.config.design.trial_timeout_s = seconds;
    return this;
  }

  baseline(id: string, bindings: Bindings = {}): this {
    this.baselineVariant = { id, bindings: { ...bindings } };
    return this;
  }

  addVariant(id: string, bindings: Bindings = {}): this {
    this.treatments.push({ id, bindings: { ...bindings } });
    return this;
  }

  primaryMetrics(metrics: string[]): this {
    this.config.analysis.primary_metrics = [...metrics];
    return this;
  }

  secondaryMetrics(metrics: string[]): this {
    this.config.analysis.secondary_metrics = [...metrics];
    return this;
  }

  /** What a metric is when its values cannot say (`fraction`: a share in [0, 1], never inferred). */
  metricKinds(kinds: Record<string, MetricKind>): this {
    this.config.analysis.metric_kinds = { ...kinds };
    return this;
  }

  /** `none` (the default, strictest), `full`, or `allowlist_enforced` with its hosts. */
  networkMode(mode: NetworkMode, allowedHosts: string[] = []): this {
    this.config.runtime.network = { mode, allowed_hosts: [...allowedHosts] };
    return this;
  }

  sandboxImage(image: string | null): this {
    this.config.runtime.sandbox.image = image;
    return this;
  }

  /** Variables passed to the harness whatever the sanitization profile (never written out). */
  envAllow(names: string[]): this {
    this.config.runtime.env_allow = [...names];
    return this;
  }

  /** The validated config, its dataset path relative to `experimentDir`. */
  build(options: YamlOptions = {}): ExperimentConfig {
    const missing: Array<[string, string]> = [];
    if (this.datasetPath === null) missing.push(['dataset.path', 'call datasetJsonl(path) first']);
    if (this.config.runtime.harness.command.length === 0) missing.push(['runtime.harness.command', 'call harnessCli(argv) first']);
    if (this.baselineVariant === null) missing.push(['variants.baseline', 'call baseline(id, bindings) first']);
    const [first] = missing;
    if (first) throw new InvalidExperimentError(first[0], first[1], missing.map(([field, message]) => ({ field, message })));
    const config: ExperimentConfig = structuredClone({
      ...this.config,
      dataset: { ...this.config.dataset, path: relativeToFile(this.datasetPath ?? '', options.experimentDir ?? '.lab') },
      variants: { baseline: this.baselineVariant as VariantSpec, treatments: this.treatments },
    });
    check(config);
    return config;
  }

  toYaml(options: YamlOptions = {}): string {
    return toYaml(this.build(options) as unknown as JsonValue);
  }

  /** Write the YAML to `path` (folders made), the dataset path adjusted to where it lands. */
  write(path: string): string {
    const folder = dirname(resolve(path));
    const root = basename(folder) === '.lab' ? dirname(folder) : folder;
    const text = this.toYaml({ experimentDir: relative(root, folder) || '.' });
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text, 'utf8');
    return path;
  }
}

/** A project-root-relative path as seen from `experimentDir` (also project-root-relative). */
export function relativeToFile(path: string, experimentDir: string): string {
  if (isAbsolute(path)) return path;
  if (isAbsolute(experimentDir)) throw new InvalidExperimentError('experimentDir', `relative to the project root, got ${experimentDir}`);
  return posix.relative(posix.join('/', experimentDir), posix.join('/', path));
}

function check(c: ExperimentConfig): void {
  const fail = (field: string, message: string): never => {
    throw new InvalidExperimentError(field, message);
  };
  if (!ID.test(c.experiment.id) || c.experiment.id.length > 100) fail('experiment.id', `letters, digits, _ . - only, got ${JSON.stringify(c.experiment.id)}`);
  if (!c.experiment.name) fail('experiment.name', 'must not be empty');
  if (!WORKLOADS.includes(c.experiment.workload_type)) fail('experiment.workload_type', `one of ${WORKLOADS.join(', ')}`);
  if (!c.dataset.path) fail('dataset.path', 'must not be empty');
  if (c.dataset.limit !== null && !(Number.isInteger(c.dataset.limit) && c.dataset.limit >= 1)) fail('dataset.limit', 'an integer of at least 1');
  const r = c.design.replications;
  if (!Number.isInteger(r) || r < 1 || r > 10_000) fail('design.replications', `an integer from 1 to 10000, got ${r}`);
  if (!Number.isInteger(c.design.random_seed)) fail('design.random_seed', 'an integer');
  if (!PROFILES.includes(c.design.sanitization_profile)) fail('design.sanitization_profile', `one of ${PROFILES.join(', ')}`);
  if (!(c.design.trial_timeout_s > 0)) fail('design.trial_timeout_s', 'greater than 0');
  if (!c.runtime.harness.command[0]?.trim()) fail('runtime.harness.command', 'the first element must name a program');
  if (!LEVELS.includes(c.runtime.harness.integration_level)) fail('runtime.harness.integration_level', `one of ${LEVELS.join(', ')}`);
  if (!NETWORK_MODES.includes(c.runtime.network.mode)) fail('runtime.network.mode', `one of ${NETWORK_MODES.join(', ')}`);
  const badEnv = c.runtime.env_allow.filter((n) => !ENV_NAME.test(n));
  if (badEnv.length) fail('runtime.env_allow', `not environment variable names: ${badEnv.join(', ')}`);
  const all = [c.variants.baseline, ...c.variants.treatments];
  all.forEach((v, i) => {
    const field = i === 0 ? 'variants.baseline.id' : `variants.treatments[${i - 1}].id`;
    if (!ID.test(v.id) || v.id.length > 100) fail(field, `letters, digits, _ . - only, got ${JSON.stringify(v.id)}`);
  });
  const ids = all.map((v) => v.id);
  if (new Set(ids).size !== ids.length) fail('variants', `variant ids must be unique, got ${ids.join(', ')}`);
}
