#!/usr/bin/env bash
# Raw sequential write speed of the disk under target/bench-tmp (where the strom-log
# benchmarks write), measured with dd, for comparison with `cargo bench -p strom-log`.
#
#   buffered          1 MiB writes, no sync at all (page cache speed, mostly)
#   fdatasync at end  1 MiB writes, one fdatasync before dd exits (conv=fdatasync)
#   dsync 1 MiB       every 1 MiB write synced (oflag=dsync), like FlushPolicy::Always
#                     with one appender and 1 MiB batches
#   dsync 16 KiB      every 16 KiB write synced, like 16 KiB batches
#
# Sizes (MiB) can be overridden: BIG_MIB (default 1024) for the first three,
# SMALL_MIB (default 64) for the 16 KiB dsync run. Data comes from /dev/zero.
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/target/bench-tmp"
mkdir -p "$dir"
file="$(mktemp "$dir/disk.XXXXXX")"
trap 'rm -f "$file"' EXIT

big_mib="${BIG_MIB:-1024}"
small_mib="${SMALL_MIB:-64}"

# run LABEL BLOCK_BYTES COUNT [dd flags...]: prints one table row.
run() {
    local label="$1" bs="$2" count="$3"
    shift 3
    rm -f "$file"
    sync
    local start end bytes
    start=$(date +%s.%N)
    dd if=/dev/zero of="$file" bs="$bs" count="$count" "$@" status=none
    end=$(date +%s.%N)
    bytes=$((bs * count))
    awk -v label="$label" -v bs="$bs" -v bytes="$bytes" -v s="$start" -v e="$end" 'BEGIN {
        t = e - s
        printf "%-18s %8s %10d %9.2f %10.1f %10.1f\n",
            label, (bs >= 1048576 ? bs / 1048576 " MiB" : bs / 1024 " KiB"),
            bytes / 1048576, t, bytes / t / 1e6, bytes / t / 1048576
    }'
}

echo "disk: $(df -h --output=source,fstype "$dir" | tail -1 | tr -s ' ') ($dir)"
printf "%-18s %8s %10s %9s %10s %10s\n" "mode" "block" "MiB" "seconds" "MB/s" "MiB/s"
run "buffered" $((1024 * 1024)) "$big_mib"
run "fdatasync at end" $((1024 * 1024)) "$big_mib" conv=fdatasync
run "dsync 1 MiB" $((1024 * 1024)) "$big_mib" oflag=dsync
run "dsync 16 KiB" $((16 * 1024)) $((small_mib * 64)) oflag=dsync
rm -f "$file"
sync
