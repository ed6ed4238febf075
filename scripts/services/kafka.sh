#!/usr/bin/env bash
# Fetch the jars of a real Apache Kafka broker for the Kafka tests and for users without a
# cluster: Debian packages no Kafka and CI reaches only package registries, so the broker
# comes from Maven Central through mvn and runs from a plain classpath (scripts/kafka.sh).
#
# Idempotent, non-interactive, run as root on Debian 12 (bookworm):
#   bash scripts/services/kafka.sh               # make sure Java 17 + the jars are there
#   bash scripts/services/kafka.sh --print-libs  # the same; stdout is only the libs dir
#   bash scripts/services/kafka.sh --check       # no download: exit 1 naming what is missing
#
# The jars are cached in ${EXFIL_KAFKA_HOME:-$HOME/.cache/exfil-detector/kafka-VERSION}/libs;
# a complete cache (its .complete stamp names these versions and every jar) skips mvn.
set -euo pipefail

# Kafka 4.3 is the newest broker line kafka-python 3.0.12 knows (its broker version table
# and README badge stop at 4.3); 4.3.1 is the newest 4.3 release on Maven Central.
KAFKA_VERSION=4.3.1
# Kafka 4.3 declares slf4j-api 1.7 but ships no logging backend: the log4j2 SLF4J 2
# provider needs slf4j-api 2.0 (which keeps the 1.7 calling API), pinned to the version
# this log4j release was built against.
LOG4J_VERSION=2.26.1
SLF4J_VERSION=2.0.17

HERE="$(cd "$(dirname "$0")" && pwd)"
KAFKA_HOME="${EXFIL_KAFKA_HOME:-$HOME/.cache/exfil-detector/kafka-$KAFKA_VERSION}"
LIBS="$KAFKA_HOME/libs"
STAMP="$LIBS/.complete"
STAMP_KEY="kafka_2.13=$KAFKA_VERSION log4j=$LOG4J_VERSION slf4j=$SLF4J_VERSION"

mode=install
case "${1:-}" in
    "") ;;
    --print-libs) mode=print ;;
    --check) mode=check ;;
    *)
        echo "usage: $0 [--print-libs | --check]" >&2
        exit 2
        ;;
esac

say() {
    # --print-libs callers read stdout as the path, so progress goes to stderr there.
    if [[ $mode == print ]]; then echo "kafka.sh: $*" >&2; else echo "kafka.sh: $*"; fi
}

java_major() {
    # `java -version` prints e.g. `openjdk version "17.0.15" 2025-04-15` on stderr.
    java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}'
}

cache_complete() {
    [[ -f $STAMP ]] || return 1
    [[ "$(head -n 1 "$STAMP")" == "$STAMP_KEY" ]] || return 1
    local jar count=0
    while IFS= read -r jar; do
        [[ -s "$LIBS/$jar" ]] || return 1
        count=$((count + 1))
    done < <(tail -n +2 "$STAMP")
    ((count > 0))
}

if [[ $mode == check ]]; then
    if ! command -v java >/dev/null 2>&1; then
        echo "kafka.sh: java not found on PATH: the Kafka broker needs Java 17" \
            "(run: bash scripts/services/kafka.sh)" >&2
        exit 1
    fi
    if (($(java_major) < 17)); then
        echo "kafka.sh: $(command -v java) is Java $(java_major); the Kafka broker needs" \
            "Java 17 or newer" >&2
        exit 1
    fi
    if ! cache_complete; then
        echo "kafka.sh: the Kafka $KAFKA_VERSION broker jars are not in $LIBS" \
            "(run: bash scripts/services/kafka.sh)" >&2
        exit 1
    fi
    echo "$LIBS"
    exit 0
fi

# The CI image has Java 17 and Maven; only a machine without them needs apt (as root).
if ! command -v java >/dev/null 2>&1; then
    source "$HERE/apt.sh"
    ensure_packages kafka.sh openjdk-17-jre-headless >&2
fi
major="$(java_major)"
if [[ -z $major ]] || ((major < 17)); then
    echo "kafka.sh: $(command -v java) is Java ${major:-?}; the Kafka $KAFKA_VERSION broker" \
        "needs Java 17 or newer" >&2
    exit 1
fi
say "Java $major at $(readlink -f "$(command -v java)")"

mkdir -p "$KAFKA_HOME"
# Two test sessions may start at once on a fresh cache: one downloads, the other waits.
exec 9>"$KAFKA_HOME/.lock"
flock 9

if cache_complete; then
    say "cache complete: Kafka $KAFKA_VERSION broker jars in $LIBS (mvn not run)"
else
    if ! command -v mvn >/dev/null 2>&1; then
        source "$HERE/apt.sh"
        ensure_packages kafka.sh maven >&2
    fi
    say "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION + log4j $LOG4J_VERSION" \
        "from Maven Central (mvn)"
    started=$SECONDS
    tmp="$(mktemp -d "$KAFKA_HOME/libs.tmp.XXXXXX")"
    # The copy lands in a temp dir and is renamed whole, so an interrupted download never
    # leaves a cache that looks complete.
    # mvn's output (terminal escapes even with -q) is shown only when it fails.
    if ! mvn -B -q -Dstyle.color=never -f "$HERE/kafka/pom.xml" \
        -Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION" \
        -Dslf4j.version="$SLF4J_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
        >"$tmp.log" 2>&1; then
        cat "$tmp.log" >&2
        rm -rf "$tmp" "$tmp.log"
        echo "kafka.sh: mvn could not resolve the Kafka $KAFKA_VERSION broker jars" >&2
        exit 1
    fi
    rm -f "$tmp.log"
    {
        echo "$STAMP_KEY"
        (cd "$tmp" && ls -1 -- *.jar)
    } >"$tmp/.complete"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    say "fetched $(($(wc -l <"$STAMP") - 1)) jars in $((SECONDS - started)) s"
fi

# The broker must be on the classpath: a stamp naming jars that lack it would be a bug here.
test -s "$LIBS/kafka_2.13-$KAFKA_VERSION.jar"
if [[ $mode == print ]]; then
    echo "$LIBS"
else
    say "OK: Kafka $KAFKA_VERSION broker jars in $LIBS (start one: scripts/kafka.sh start DIR)"
fi
