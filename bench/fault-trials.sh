#!/usr/bin/env bash
# The fuller kill -9 set of test/fault-injection.test.ts: AHA_FAULT_TRIALS train trials (default 100; npm test runs 16)
# and half as many export trials, from seed AHA_FAULT_SEED (default 18). Prints the summary lines the README quotes.
set -euo pipefail
cd "$(dirname "$0")/.."
AHA_FAULT_TRIALS="${AHA_FAULT_TRIALS:-100}" AHA_POISON=1 node --import tsx --test test/fault-injection.test.ts 2>&1 | grep -E -A12 "^# (train|export):|^(not )?ok|^  error:|^# (pass|fail)"
