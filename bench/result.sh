# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# The summary lines of a benchmark (sourced by the scripts of bench/).
# Besides its own report, each benchmark prints its headline rows once
# more, one line each, for bench/run-all's summary table:
#
#   RESULT<TAB>BENCH<TAB>ROW<TAB>VALUE<TAB>UNIT<TAB>BASELINE<TAB>RATIO<TAB>TARGET<TAB>MET
#
#   BENCH     the benchmark's name (discovery, varlink…)
#   ROW       what was measured, with its statistic ("publish p50")
#   VALUE     the number measured in this run
#   UNIT      VALUE's unit (ms, µs, /s, req/TTL…)
#   BASELINE  what VALUE is compared with, measured in the same run: its
#             value, unit and name ("3.1 ms etcdctl put→watcher")
#   RATIO     VALUE / the baseline's value
#   TARGET    the goal, with its operator ("<= 50 ms", "ratio <= 2")
#   MET       met, "not met", or - without a target
# No field holds a tab; an empty or absent one is "-". A line that is a
# figure quoted from elsewhere, not measured, has no business here.
# bench/run-all collects these lines from any benchmark that prints them;
# a benchmark in another language prints the same line (bench/generator).

# bench_result BENCH ROW VALUE UNIT [BASELINE [RATIO [TARGET [MET]]]]
bench_result() {
        local f out=RESULT
        for f in "$1" "$2" "$3" "$4" "${5:-}" "${6:-}" "${7:-}" "${8:-}"; do
                f=${f//$'\t'/ }
                out+=$'\t'${f:--}
        done
        printf '%s\n' "$out"
}

# bench_met VALUE OP LIMIT: "met" or "not met" (OP: <=, <, >=, >).
bench_met() {
        awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
                ok = op == "<=" ? v <= l : op == "<" ? v < l : op == ">=" ? v >= l : op == ">" ? v > l : -1
                if (ok < 0) { print "bench_met: unknown operator " op > "/dev/stderr"; exit 2 }
                print ok ? "met" : "not met"
        }'
}

# bench_ratio VALUE BASELINE: VALUE / BASELINE, 3 significant digits.
bench_ratio() {
        awk -v v="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.3g\n", v / b }'
}
