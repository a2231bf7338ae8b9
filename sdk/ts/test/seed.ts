// The seed's builder example, method for method (shared by the tests).

import { ExperimentBuilder } from '../src/index.js';

/** The seed's example experiment. */
export function seedBuilder(): ExperimentBuilder {
  return ExperimentBuilder.create('prompt_ab', 'Prompt A/B Test')
    .description('Compare prompt v1 vs v2 on coding tasks')
    .datasetJsonl('./data/tasks.jsonl', { suiteId: 'coding_tasks', splitId: 'dev', limit: 50 })
    .harnessCli(['node', './src/harness/run-trial.js'], { integrationLevel: 'cli_events' })
    .sanitizationProfile('hermetic_functional_v2')
    .replications(3)
    .randomSeed(42)
    .baseline('control', { model: 'gpt-4o', temperature: 0.0 })
    .addVariant('treatment', { model: 'gpt-4o', temperature: 0.7 })
    .primaryMetrics(['success', 'accuracy'])
    .secondaryMetrics(['latency_ms', 'cost_usd'])
    .networkMode('allowlist_enforced', ['api.openai.com']);
}
