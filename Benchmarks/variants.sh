#!/usr/bin/env bash
# Generates the openb trace variants used to validate GPU strategies, and replays them.
#
#   Benchmarks/variants.sh generate DIR          # writes DIR/<name>.csv for every variant
#   Benchmarks/variants.sh replay DIR OUT [SEEDS] [POLICIES] [SET]
#        # replays the committed traces and the variants (SET: all, tune, held-out, fresh,
#        # unseen, next, after, late or last) with --compare, two at a time, into OUT/<name>/ and OUT/<name>.txt
#
# The "tune" variants were the ones looked at while the `gpu` strategy was being changed.
# The "held-out" ones (other weights, generator seed 12) were replayed to report on the
# first version of the stranding measure, and so were seen before the second; the "fresh"
# ones (generator seed 13) were generated and replayed only to report on the second; the
# "unseen" ones (generator seed 14) only to report on the third, and the "next" ones
# (generator seed 15, made after the third version's results) to report on it once more;
# the "after" ones (generator seed 16, defined before any replay of them) to report on the
# fourth; the "late" ones (generator seed 17, mostly mixes where the CPU-only classes
# outgrow the cluster, defined before any replay of them) to report on the fifth; the
# "last" ones (generator seed 18, mostly CPU-heavy mixes below that line, defined before
# any replay of them) to report on the sixth (docs/openb-replay.md).
#
#   Benchmarks/variants.sh replay-published DIR OUT [SEEDS] [POLICIES]
#        # replays every openb_pod_list_*.csv in DIR that is not committed here (the
#        # published openb variants, from the cluster-trace-gpu-v2023 release)
# Needs the release builds of swarm-bench and the strategy plugins (docs/openb-replay.md);
# SWARM_BENCH and SWARM_PLUGIN_DIR, when set, name copies to use instead (so that a rebuild
# during a long replay does not change what it measures).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
T=$here/traces/openb
B=${SWARM_BENCH:-$here/.build/release/swarm-bench}

# name | set | generator seed | weights
VARIANTS="
tune-cpu30|tune|11|--cpu-only 0.30
tune-share60|tune|11|--sharing 0.60
tune-multi05|tune|11|--multi-gpu 0.05
tune-spec20|tune|11|--gpu-spec 0.20
held-cpu45|held-out|12|--cpu-only 0.45
held-cpu05|held-out|12|--cpu-only 0.05
held-share75|held-out|12|--sharing 0.75
held-share25|held-out|12|--sharing 0.25
held-multi10|held-out|12|--multi-gpu 0.10
held-spec40|held-out|12|--gpu-spec 0.40
held-mix|held-out|12|--cpu-only 0.25 --sharing 0.55 --multi-gpu 0.04 --gpu-spec 0.15
tune-cpu40|tune|11|--cpu-only 0.40
tune-cpu50|tune|11|--cpu-only 0.50
fresh-cpu35|fresh|13|--cpu-only 0.35
fresh-cpu55|fresh|13|--cpu-only 0.55
fresh-share70|fresh|13|--sharing 0.70
fresh-multi08|fresh|13|--multi-gpu 0.08
fresh-mix|fresh|13|--cpu-only 0.35 --sharing 0.50 --multi-gpu 0.06 --gpu-spec 0.25
unseen-cpu20|unseen|14|--cpu-only 0.20
unseen-cpu25|unseen|14|--cpu-only 0.25
unseen-cpu42|unseen|14|--cpu-only 0.42
unseen-share90|unseen|14|--sharing 0.90
unseen-share100|unseen|14|--sharing 1.0 --multi-gpu 0
unseen-multi12|unseen|14|--multi-gpu 0.12
unseen-multi15|unseen|14|--multi-gpu 0.15
unseen-spec33|unseen|14|--gpu-spec 0.33
unseen-mix|unseen|14|--cpu-only 0.20 --sharing 0.70 --multi-gpu 0.03 --gpu-spec 0.30
next-cpu10|next|15|--cpu-only 0.10
next-cpu28|next|15|--cpu-only 0.28
next-cpu48|next|15|--cpu-only 0.48
next-share50|next|15|--sharing 0.50
next-share85|next|15|--sharing 0.85
next-multi06|next|15|--multi-gpu 0.06
next-multi11|next|15|--multi-gpu 0.11
next-spec15|next|15|--gpu-spec 0.15
next-spec28|next|15|--gpu-spec 0.28
next-mix|next|15|--cpu-only 0.15 --sharing 0.60 --multi-gpu 0.08 --gpu-spec 0.10
after-cpu15|after|16|--cpu-only 0.15
after-cpu33|after|16|--cpu-only 0.33
after-cpu38|after|16|--cpu-only 0.38
after-cpu41|after|16|--cpu-only 0.41
after-cpu44|after|16|--cpu-only 0.44
after-cpu52|after|16|--cpu-only 0.52
after-share65|after|16|--sharing 0.65
after-multi09|after|16|--multi-gpu 0.09
after-spec22|after|16|--gpu-spec 0.22
after-mix|after|16|--cpu-only 0.30 --sharing 0.45 --multi-gpu 0.05 --gpu-spec 0.20
late-cpu39|late|17|--cpu-only 0.39
late-cpu43|late|17|--cpu-only 0.43
late-cpu47|late|17|--cpu-only 0.47
late-cpu53|late|17|--cpu-only 0.53
late-cpu60|late|17|--cpu-only 0.60
late-cpu70|late|17|--cpu-only 0.70
late-cpu45-share60|late|17|--cpu-only 0.45 --sharing 0.60
late-cpu50-spec30|late|17|--cpu-only 0.50 --gpu-spec 0.30
late-cpu48-multi08|late|17|--cpu-only 0.48 --multi-gpu 0.08
late-mix|late|17|--cpu-only 0.46 --sharing 0.50 --multi-gpu 0.05 --gpu-spec 0.20
last-cpu22|last|18|--cpu-only 0.22
last-cpu31|last|18|--cpu-only 0.31
last-cpu36|last|18|--cpu-only 0.36
last-cpu40|last|18|--cpu-only 0.40
last-cpu46|last|18|--cpu-only 0.46
last-cpu34-multi07|last|18|--cpu-only 0.34 --multi-gpu 0.07
last-cpu38-share65|last|18|--cpu-only 0.38 --sharing 0.65
last-share55|last|18|--sharing 0.55
last-spec25|last|18|--gpu-spec 0.25
last-mix|last|18|--cpu-only 0.37 --sharing 0.45 --multi-gpu 0.06 --gpu-spec 0.15
"

# replay_files OUT SEEDS POLICIES FILE...: replays each file with --compare POLICIES, two
# at a time, into OUT/<name>/ and OUT/<name>.txt, then prints each comparison.
replay_files() {
    local out=$1 seeds=$2 policies=$3
    shift 3
    printf '%s\n' "$@" | xargs -P 2 -I{} sh -c \
        'n=$(basename {} .csv); "$0" replay ${SWARM_PLUGIN_DIR:+--plugin-dir "$SWARM_PLUGIN_DIR"} --nodes "$1/openb_node_list_gpu_node.csv" --pods {} --policies "$2" --compare "$2" --seeds "$3" --out "$4/$n" > "$4/$n.txt" 2> /dev/null' \
        "$B" "$T" "$policies" "$seeds" "$out"
    for f in "$@"; do
        n=$(basename "$f" .csv)
        echo "== $n"
        sed -n '/^compare/,/^wrote/{/^wrote/!p}' "$out/$n.txt"
    done
}

case "${1:-}" in
generate)
    dir=${2:?usage: variants.sh generate DIR}
    mkdir -p "$dir"
    echo "$VARIANTS" | while IFS='|' read -r name set seed weights; do
        [ -n "$name" ] || continue
        # shellcheck disable=SC2086
        "$B" trace-variant --pods "$T/openb_pod_list_default.csv" --nodes "$T/openb_node_list_gpu_node.csv" \
            $weights --seed "$seed" --out "$dir/$name.csv"
    done
    ;;
replay)
    dir=${2:?usage: variants.sh replay DIR OUT [SEEDS] [POLICIES] [SET]}
    out=${3:?usage: variants.sh replay DIR OUT [SEEDS] [POLICIES] [SET]}
    seeds=${4:-42-51}
    policies=${5:-gpu,fgd}
    set=${6:-all}
    mkdir -p "$out"
    files=()
    if [ "$set" = all ]; then
        for t in default gpushare40 multigpu20 gpuspec10 cpu050; do files+=("$T/openb_pod_list_$t.csv"); done
    fi
    while IFS='|' read -r name vset _ _; do
        [ -n "$name" ] || continue
        if [ "$set" = all ] || [ "$set" = "$vset" ]; then files+=("$dir/$name.csv"); fi
    done <<< "$VARIANTS"
    replay_files "$out" "$seeds" "$policies" "${files[@]}"
    ;;
replay-published)
    dir=${2:?usage: variants.sh replay-published DIR OUT [SEEDS] [POLICIES]}
    out=${3:?usage: variants.sh replay-published DIR OUT [SEEDS] [POLICIES]}
    seeds=${4:-42-51}
    policies=${5:-gpu,fgd}
    mkdir -p "$out"
    files=()
    for f in "$dir"/openb_pod_list_*.csv; do
        [ -e "$f" ] || continue
        [ -e "$T/$(basename "$f")" ] || files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || { echo "no openb_pod_list_*.csv in $dir that is not committed" >&2; exit 2; }
    replay_files "$out" "$seeds" "$policies" "${files[@]}"
    ;;
*)
    sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"
    exit 2
    ;;
esac
