/**
 * Errors. `LabRunnerError`: an `opslab lab` command did not succeed — the error its `--json` envelope
 * named (`code`: invalid_input, not_found, conflict, policy_violation …), with the process's exit
 * code, stderr and argv. Without an envelope the SDK names what happened: `runner_not_found` (could
 * not start; exitCode null), `runner_timeout` (killed; exitCode null), `command_failed` (non-zero exit
 * without JSON), `invalid_output` (exit 0 without one JSON object).
 *
 * `InvalidExperimentError`: the builder refused a value, naming the field (`design.replications`).
 */

export type ErrorDetails = { [key: string]: unknown };

export class LabRunnerError extends Error {
  override readonly name = 'LabRunnerError';

  constructor(
    readonly code: string,
    message: string,
    readonly details: ErrorDetails,
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly command: string[],
  ) {
    super(message);
  }
}

export class InvalidExperimentError extends Error {
  override readonly name = 'InvalidExperimentError';
  readonly code = 'invalid_input';

  constructor(
    readonly field: string,
    reason: string,
    readonly errors: Array<{ field: string; message: string }> = [{ field, message: reason }],
  ) {
    super(`${field}: ${reason}`);
  }
}

const STDERR_TAIL = 4000;

/** The one JSON object `--json` prints (the last non-empty line, should anything precede it). */
export function parseObject(stdout: string): { [key: string]: unknown } | null {
  const lastLine = stdout.trim().split('\n').pop() ?? '';
  for (const text of [stdout, lastLine]) {
    try {
      const value: unknown = JSON.parse(text);
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as { [key: string]: unknown };
    } catch {
      // not this one
    }
  }
  return null;
}

/** The error of a failed command: from its envelope, else from the exit code and stderr's tail. */
export function errorOf(command: string[], exitCode: number | null, stdout: string, stderr: string): LabRunnerError {
  const tail = stderr.slice(-STDERR_TAIL);
  const error = parseObject(stdout)?.['error'];
  if (error !== null && typeof error === 'object' && !Array.isArray(error)) {
    const e = error as { code?: unknown; message?: unknown; details?: unknown };
    const details = e.details !== null && typeof e.details === 'object' && !Array.isArray(e.details) ? (e.details as ErrorDetails) : {};
    return new LabRunnerError(String(e.code ?? 'command_failed'), String(e.message ?? `exit code ${exitCode}`), details, exitCode, tail, command);
  }
  const last = tail.split('\n').filter((line) => line.trim()).pop() ?? '';
  return new LabRunnerError(
    exitCode === 0 ? 'invalid_output' : 'command_failed',
    `${command.slice(0, 3).join(' ')} exited ${exitCode} without a JSON envelope${last ? `: ${last}` : ''}`,
    { stdout: stdout.slice(-STDERR_TAIL) },
    exitCode,
    tail,
    command,
  );
}
