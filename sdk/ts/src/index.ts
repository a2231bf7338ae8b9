/**
 * @opslab/sdk — build opslab lab experiments in code and run them through the opslab CLI.
 *
 *   ExperimentBuilder  the seed's builder: `.lab/experiment.yaml` in code (`toYaml()`, `write(path)`)
 *   LabClient          `opslab lab <cmd> … --json` as typed promises
 *   LabRunnerError     a command that failed: code, message, details, exitCode, stderr, command
 */

export { ExperimentBuilder, relativeToFile } from './builder.js';
export type { DatasetOptions, HarnessOptions, YamlOptions } from './builder.js';
export { DEFAULT_TIMEOUT_MS, findRunner, LabClient } from './client.js';
export type { ExperimentArgs, LabClientOptions, RunArgs, RunDevOptions, RunOptions } from './client.js';
export { errorOf, InvalidExperimentError, LabRunnerError, parseObject } from './errors.js';
export type { ErrorDetails } from './errors.js';
export type * from './types.js';
export { toYaml } from './yaml.js';
