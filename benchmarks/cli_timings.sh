#!/usr/bin/env bash
# BENCHMARKS §13: wall time of the CLI's cheap calls (help, version, a completion query), worst of 3 runs
# each, measured with /usr/bin/time. Prints the table's rows. Usage: bash benchmarks/cli_timings.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PRUNEPEFT=${PRUNEPEFT:-.venv/bin/prunepeft}
t=$(mktemp)
worst() {
  local w=0
  for _ in 1 2 3; do
    /usr/bin/time -o "$t" -f %e "$@" >/dev/null 2>&1
    w=$(python3 -c "print(max($w, $(tail -1 "$t")))")
  done
  printf '%.2f' "$w"
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
for a in "--help" "--version" "search --help" "baseline --help" "report --help" "export --help" \
         "predict --help" "evaluate --help"; do
  # shellcheck disable=SC2086
  echo "| \`prunepeft $a\` | $(worst "$PRUNEPEFT" $a) |"
done
for line in "prunepeft se" "prunepeft search task="; do
  echo "| completion: \`COMP_LINE='$line' prunepeft -sc query=bash\` | $(COMP_LINE="$line" COMP_POINT=${#line} worst "$PRUNEPEFT" -sc query=bash) |"
done
rm -f "$t"
