#!/usr/bin/env bash
# strom-streams vs Kafka Streams, same count-per-key topology, same broker, same input,
# same run: records/s (first to last record processed) and peak RSS of each application
# process. Needs a running broker (BOOTSTRAP), Java 17 and Maven.
#   crates/streams/bench/side_by_side.sh 127.0.0.1:9092 200000
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../../.."
bootstrap="${1:-127.0.0.1:9092}"
n="${2:-200000}"
run="$$"
input="side-in-$run"

(cd "$root" && cargo build -q --release -p strom-streams --example streams_bench)
bench="$root/target/release/examples/streams_bench"
(cd "$here/kafka-streams" && mvn -q -B package -DskipTests && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime)
cp="$here/kafka-streams/target/kstreams-count-1.jar:$here/kafka-streams/target/dependency/*"

"$bench" produce "$bootstrap" "$input" "$n"
for g in alos eos; do
    echo "strom-streams $g: $("$bench" count-app "$bootstrap" "$input" "strom-out-$g-$run" "$n" "$g")"
    jg=at_least_once; [ "$g" = eos ] && jg=exactly_once_v2
    echo "kafka-streams $g: $(java -cp "$cp" strom.CountPerKey "$bootstrap" "$input" "ks-out-$g-$run" "$n" "$jg" | tail -1)"
done
