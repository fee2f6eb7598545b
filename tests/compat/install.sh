#!/usr/bin/env bash
# Installs what the real-client compatibility suite needs: kcat, redis-server
# and PostgreSQL (Debian; the pipeline sink tests start their own servers),
# Chromium and ChromeDriver (Debian; the pipeline dashboard tests), a Python
# venv with confluent-kafka, kafka-python, pytest, the sink test clients and
# Selenium, and the KafkaJS packages. Idempotent: a re-run only redoes what is missing or stale.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
node_dir="$here/node"

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd=(sudo)
fi

# apt_install PACKAGE...: installs, refreshing the package lists once if needed.
apt_install() {
    if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"; then
        "${sudo_cmd[@]}" apt-get update
        "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
    fi
}

# --- kcat ------------------------------------------------------------------
if ! command -v kcat >/dev/null 2>&1; then
    echo "install: kcat"
    apt_install kcat
fi

# --- redis-server and PostgreSQL (test_pipeline_sinks.py starts its own) --------
if ! command -v redis-server >/dev/null 2>&1; then
    echo "install: redis-server"
    apt_install redis-server
fi
# Any installed major version will do: the tests look in /usr/lib/postgresql/*/bin.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    echo "install: postgresql"
    apt_install postgresql
fi

# --- Chromium and ChromeDriver (test_pipeline_dashboard.py drives headless pages) ---
# Debian builds both from one source, so their versions always match; Selenium
# is pointed at these two paths and downloads nothing.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "install: chromium chromium-driver"
    apt_install chromium chromium-driver
fi

# --- Python venvs -------------------------------------------------------------
python="${PYTHON:-python3}"
# python_venv DIR REQUIREMENTS: a venv at DIR with REQUIREMENTS installed, redone
# only when the requirements file changed.
python_venv() {
    local dir="$1" req="$2"
    local stamp="$dir/.requirements.sha256"
    local want
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [ ! -x "$dir/bin/python" ]; then
        echo "install: python venv at $dir"
        "$python" -m venv "$dir"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "install: python packages from $req"
        "$dir/bin/pip" install --disable-pip-version-check -q -r "$req"
        echo "$want" >"$stamp"
    fi
}
python_venv "$venv" "$here/requirements.txt"
# Quix Streams has its own venv: it pins an older confluent-kafka.
quix_venv="$here/.venv-quix"
python_venv "$quix_venv" "$here/quix/requirements.txt"

# --- Node packages -----------------------------------------------------------
nstamp="$node_dir/node_modules/.package-lock.sha256"
nwant="$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$nstamp" 2>/dev/null)" != "$nwant" ]; then
    echo "install: npm ci in $node_dir"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$nwant" >"$nstamp"
fi

# --- Apache Kafka jars (strom-streams runs its exactly-once test against Kafka too) -
kafka_dir="$here/kafka"
kstamp="$kafka_dir/target/.pom.sha256"
kwant="$(sha256sum "$kafka_dir/pom.xml" | cut -d' ' -f1)"
if [ "$(cat "$kstamp" 2>/dev/null)" != "$kwant" ]; then
    echo "install: Apache Kafka jars (Maven Central) in $kafka_dir/target/dependency"
    rm -rf "$kafka_dir/target/dependency"
    (cd "$kafka_dir" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime)
    echo "$kwant" >"$kstamp"
fi

# --- check -------------------------------------------------------------------
kcat -V 2>&1 | grep -o 'Version [^ ]* .*librdkafka [0-9.]*' || kcat -V
"$venv/bin/python" -c 'import confluent_kafka, confluent_kafka.schema_registry.avro, confluent_kafka.schema_registry.json_schema, confluent_kafka.schema_registry.protobuf, kafka, pytest; print("confluent-kafka", confluent_kafka.__version__, "librdkafka", confluent_kafka.libversion()[0]); print("kafka-python", kafka.__version__); print("pytest", pytest.__version__)'
(cd "$node_dir" && node -e "console.log('kafkajs', require('kafkajs/package.json').version)")
"$quix_venv/bin/python" -c 'import importlib.metadata as m; print("quixstreams", m.version("quixstreams"))'
redis-server --version
ls /usr/lib/postgresql/*/bin/initdb
/usr/bin/chromium --version 2>/dev/null | grep -o 'Chromium [0-9.]*'
/usr/bin/chromedriver --version | grep -o 'ChromeDriver [0-9.]*'
"$venv/bin/python" -c 'import importlib.metadata as m; print(*(f"{p} {m.version(p)}" for p in ("redis", "websockets", "osmem-server", "selenium")), sep=chr(10))'
ls "$kafka_dir/target/dependency" | grep -o '^kafka_2.13-[0-9.]*' | sed 's/^/apache kafka /'
