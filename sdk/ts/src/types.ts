/**
 * The shapes the SDK reads and writes: the experiment config (`.lab/experiment.yaml`) and what each
 * `opslab lab … --json` command prints. They mirror the Python models (`opslab.lab.config`,
 * `opslab.lab.records`, `opslab.lab.analysis.Comparison`, `opslab.lab.sdk.results`); keys a newer
 * runner adds pass through untyped.
 */

import type { JsonValue } from './yaml.js';

export type { JsonValue };
export type Bindings = { [key: string]: JsonValue };
export type NetworkMode = 'none' | 'allowlist_enforced' | 'full';
export type IntegrationLevel = 'cli_basic' | 'cli_events' | 'otel' | 'sdk_control' | 'sdk_full';
export type SanitizationProfile = 'hermetic_functional_v2' | 'passthrough';
export type WorkloadType = 'agent_harness' | 'trainer';
export type Outcome = 'success' | 'failure' | 'error' | 'timeout' | 'skipped';
export type RunStatus = 'running' | 'paused' | 'interrupted' | 'stopped' | 'completed';
export type MetricKind = 'rate' | 'fraction' | 'mean';

export interface VariantSpec {
  id: string;
  bindings: Bindings;
}

export interface ExperimentConfig {
  experiment: { id: string; name: string; description: string; workload_type: WorkloadType };
  dataset: { path: string; suite_id: string; split_id: string; limit: number | null };
  design: { replications: number; random_seed: number; sanitization_profile: SanitizationProfile; trial_timeout_s: number };
  runtime: {
    harness: { command: string[]; integration_level: IntegrationLevel };
    sandbox: { image: string | null };
    network: { mode: NetworkMode; allowed_hosts: string[] };
    env_allow: string[];
  };
  variants: { baseline: VariantSpec; treatments: VariantSpec[] };
  analysis: { primary_metrics: string[]; secondary_metrics: string[]; metric_kinds?: Record<string, MetricKind> };
}

/** Every envelope: `{"ok": true, "command": …, …}`. */
export interface Envelope {
  ok: true;
  command: string;
}

export interface Isolation {
  sandbox: 'local' | 'container';
  sandbox_backend: 'local' | 'rootfs' | 'oci';
  sandbox_mechanism: string;
  container_image: string | null;
  rootfs: string | null;
  network_mode: NetworkMode;
  network_enforced: boolean;
  network_mechanism: string;
  allowed_hosts: string[];
  note: string;
}

export interface ExperimentSummary {
  experiment_id: string;
  workload_type: WorkloadType;
  project_root: string;
  dataset_path: string;
  dataset_exists: boolean;
  dataset_error: string | null;
  tasks: number;
  variants: string[];
  replications: number;
  total_trials: number;
  harness_command: string[];
  harness_cwd: string;
  harness_script_resolved: string | null;
  harness_script_exists: boolean;
  integration_level: IntegrationLevel;
  sanitization_profile: SanitizationProfile;
  network_mode: NetworkMode;
  allowed_hosts: string[];
  sandbox_mode: string;
  container_image: string | null;
  isolation: Isolation;
  overrides: Bindings;
  first_trials: Array<{ trial_id: string; variant_id: string; task_id: string; replication: number; seed: number }>;
}

export interface DescribeResult extends Envelope {
  summary: ExperimentSummary;
}

export interface RunInfo {
  run_id: string;
  run_dir: string;
  status: RunStatus;
  total_trials: number;
  outcomes: Partial<Record<Outcome, number>>;
  tables: Record<string, number>;
  retried: number;
  reported: number;
  report_failures: number;
  report_error: string | null;
}

export interface MetricSummary {
  kind: MetricKind;
  mean: number;
  ci: [number, number] | null;
  n: number;
  n_tasks: number;
  clustered_by_task: boolean;
  method: string;
}

export interface VariantSummary {
  n: number;
  successes: number;
  failures: number;
  errors: number;
  success_rate: number | null;
  success_ci: [number, number];
  success_ci_method: string;
  error_rate: number | null;
  pass_at_k: Record<string, number | null>;
  metrics: Record<string, MetricSummary>;
}

export interface MetricDifference {
  kind: MetricKind;
  n_tasks: number;
  baseline_mean: number;
  treatment_mean: number;
  /** treatment − baseline */
  mean_difference: number;
  ci: [number, number] | null;
  ci_excludes_zero: boolean;
  method: string;
}

export interface Contrast {
  treatment: string;
  baseline: string;
  baseline_errors: number;
  treatment_errors: number;
  metrics: Record<string, MetricDifference>;
  pass_fail: { test: string; n_tasks: number; baseline_only: number; treatment_only: number; p_value: number };
  objective: JsonValue;
}

/** `analysis/comparison.json`: every variant summarised, each treatment against the baseline. */
export interface Comparison {
  schema_version: number;
  run_id: string;
  baseline: string;
  error_rule: string;
  metric_kinds: Record<string, MetricKind>;
  objective: { name: string; direction: 'minimize' | 'maximize' } | null;
  variants: Record<string, VariantSummary>;
  comparisons: Contrast[];
  warnings: string[];
}

/** `trials/<id>/trial_output.json`. */
export interface TrialRecord {
  schema_version: number;
  trial_id: string;
  variant_id: string;
  task_id: string;
  replication: number;
  seed: number;
  outcome: Outcome;
  metrics: Record<string, number | boolean | null>;
  result: JsonValue;
  error: string | { [key: string]: JsonValue } | null;
  exit_code: number | null;
  duration_ms: number;
  attempt: number;
  event_counts: Record<string, number>;
  started_at?: string | null;
  ended_at?: string | null;
}

export interface RunResult extends Envelope {
  run: RunInfo;
  /** Read from the run's `analysis/comparison.json`; null before the run was analysed. */
  comparison: Comparison | null;
}

export interface ControlResult {
  run_id: string;
  run_dir: string;
  state: 'running' | 'paused' | 'stopped';
  changed: boolean;
  runner_active: boolean;
  runner_pid: number | null;
  status: RunStatus;
}

export interface PauseResult extends Envelope {
  control: ControlResult;
}

export interface ResumeResult extends Envelope {
  control: ControlResult;
  run: RunInfo | null;
  comparison: Comparison | null;
}

export interface TrialSummary {
  outcome: Outcome;
  metrics: Record<string, number | boolean | null>;
  result: JsonValue;
  error: JsonValue;
}

export interface ReplayResult extends Envelope {
  replay: {
    run_id: string;
    trial_id: string;
    replay_dir: string;
    trial_dir: string;
    created_at: string;
    matches: boolean;
    differences: Array<{ field: string; change: 'changed' | 'added' | 'removed'; original: JsonValue; replay: JsonValue }>;
    ignored: string[];
    original: TrialSummary;
    replay: TrialSummary;
  };
}

export interface ForkResult extends Envelope {
  fork: {
    run_id: string;
    fork_id: string;
    from_trial: string;
    fork_dir: string;
    trial_dir: string;
    created_at: string;
    checkpoint: { index: number; label: string | null; reported_path: string; source: string; path: string };
    set: Bindings;
    bindings: Bindings;
  };
  trial: TrialRecord;
}

export interface PublishResult extends Envelope {
  bundle: { path: string; run_id: string; files: number; redacted_files: number; bytes: number; sha256: string };
}

export interface KnobsValidation extends Envelope {
  manifest_path: string;
  knobs: string[];
  values: Bindings;
  pointers_checked: boolean;
}

export interface HooksValidation extends Envelope {
  report: { file: string; manifest: string | null; integration_level: IntegrationLevel; events: number; types: Record<string, number> };
}

export interface SchemaValidation extends Envelope {
  report: { schema_name: string; file: string; valid: boolean };
}
