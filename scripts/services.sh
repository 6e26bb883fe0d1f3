# shellcheck shell=bash
# Throwaway database servers for authstat's test suite. Sourced by scripts/test.
#
#   start_services   install what is missing, start PostgreSQL 15 (with the hll extension),
#                    MariaDB, the MongoDB-protocol test server and ActiveMQ (STOMP) on free
#                    loopback ports, and export AUTHSTAT_TEST_POSTGRES_URL,
#                    AUTHSTAT_TEST_MYSQL_URL, AUTHSTAT_TEST_MONGODB_URI,
#                    AUTHSTAT_TEST_STOMP_ADDR, AUTHSTAT_TEST_STOMP_SSL_ADDR (the broker's
#                    self-signed certificate is conf/broker.pem), AUTHSTAT_TEST_STOMP_MTLS_ADDR
#                    (the same, with client certificates of the test CA required),
#                    AUTHSTAT_TEST_ACTIVEMQ_DIR
#                    (its start.sh and stop.sh restart the broker), AUTHSTAT_TEST_TLS_DIR (the
#                    run's throwaway CA ca.pem, the servers' server.pem/.key for localhost, the
#                    client certificate client.pem/.key of the database user authstat_tls)
#   stop_services    stop them and delete their data (scripts/test runs it on exit)
#
# Everything lives in one temporary directory. A server that cannot be started stops the run
# with a message saying which and why: the suite never skips a backend silently.

AUTHSTAT_SERVICES_DIR="${AUTHSTAT_SERVICES_DIR:-}"
AUTHSTAT_SERVICES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The user that runs the database servers when we are root (initdb refuses to run as root).
AUTHSTAT_DB_USER="authstat-test"
# npm package @jongodb/memory-server-bin-linux-x64-gnu 0.1.6.
JONGODB_TARBALL="https://registry.npmjs.org/@jongodb/memory-server-bin-linux-x64-gnu/-/memory-server-bin-linux-x64-gnu-0.1.6.tgz"
JONGODB_SHA256="bb4ddff36377b1fbefac107476c67c354267f6c6b3dd9f1d89ac547a3480861e"

services_fail() {
    echo "scripts/test: $*" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Installs Debian packages that are not installed yet.
need_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "scripts/test: installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq >/dev/null ||
        services_fail "apt-get update failed: cannot install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        services_fail "could not install ${missing[*]} from Debian's packages"
}

# Runs a command as the database user (root) or as ourselves (anyone else).
as_db_user() {
    if [ "$(id -u)" = 0 ]; then
        su "$AUTHSTAT_DB_USER" -s /bin/sh -c "$*"
    else
        sh -c "$*"
    fi
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# A throwaway CA for this run, and the certificates the servers present and the tests' client
# presents (docs/tls.md). PostgreSQL's certificate names localhost and not 127.0.0.1, so that
# connecting to 127.0.0.1 with host-name verification is the wrong-host case; MariaDB's names
# 127.0.0.1 (its client library takes "localhost" for the Unix socket), and its tests swap it
# for one of another name (FLUSH SSL) for that case.
make_test_ca() {
    local dir="$AUTHSTAT_SERVICES_DIR/tls" ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    mkdir -p "$dir"
    (
        cd "$dir" || exit 1
        # shellcheck disable=SC2086
        openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj "/CN=authstat test services CA" &&
            for spec in "server localhost serverAuth DNS:localhost" "mysql-server 127.0.0.1 serverAuth IP:127.0.0.1" \
                "client authstat_tls clientAuth DNS:authstat_tls"; do
                set -- $spec
                openssl req $ec -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" &&
                    printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$4" "$3" >"$1.ext" &&
                    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" \
                        -days 2 -extfile "$1.ext" || exit 1
            done
    ) >"$dir/openssl.log" 2>&1 || services_fail "TLS: the test CA could not be made: $(tail -3 "$dir/openssl.log")"
    chmod 600 "$dir"/*.key
    # The servers read theirs as the database user; the client key stays the test runner's (libpq
    # refuses a key that another user owns).
    [ "$(id -u)" = 0 ] && chown "$AUTHSTAT_DB_USER" "$dir" "$dir"/server.* "$dir"/mysql-server.* "$dir"/ca.pem
    true
    export AUTHSTAT_TEST_TLS_DIR="$dir"
}

start_postgres() {
    need_packages postgresql-15 postgresql-15-hll libpq-dev
    local bin=/usr/lib/postgresql/15/bin dir="$AUTHSTAT_SERVICES_DIR/postgres" port
    port=$(free_port)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown "$AUTHSTAT_DB_USER" "$dir"
    as_db_user "$bin/initdb -D '$dir/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >'$dir/initdb.log' 2>&1" ||
        services_fail "PostgreSQL: initdb failed (see $dir/initdb.log): $(tail -3 "$dir/initdb.log")"
    # TLS with the run's CA; the role authstat_tls logs in with a client certificate only.
    local tls="$AUTHSTAT_SERVICES_DIR/tls"
    printf "ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\nssl_ca_file = '%s'\n" \
        "$tls/server.pem" "$tls/server.key" "$tls/ca.pem" >>"$dir/data/postgresql.conf"
    { printf 'hostssl all authstat_tls 127.0.0.1/32 cert\nhostssl all authstat_tls ::1/128 cert\nhost all authstat_tls all reject\n'
      cat "$dir/data/pg_hba.conf"; } >"$dir/pg_hba.conf" && cp "$dir/pg_hba.conf" "$dir/data/pg_hba.conf"
    as_db_user "$bin/pg_ctl -D '$dir/data' -l '$dir/server.log' -w -t 30 start \
        -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" >/dev/null" ||
        services_fail "PostgreSQL: the server did not start: $(tail -5 "$dir/server.log")"
    "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE ROLE authstat_tls LOGIN SUPERUSER" >/dev/null ||
        services_fail "PostgreSQL: the role authstat_tls could not be made"
    export AUTHSTAT_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "scripts/test: PostgreSQL 15 on 127.0.0.1:$port" >&2
}

stop_postgres() {
    local dir="$AUTHSTAT_SERVICES_DIR/postgres"
    [ -f "$dir/data/postmaster.pid" ] &&
        as_db_user "/usr/lib/postgresql/15/bin/pg_ctl -D '$dir/data' -m immediate -w stop >/dev/null 2>&1"
    return 0
}

start_mariadb() {
    need_packages mariadb-server libmariadb-dev pkg-config
    local dir="$AUTHSTAT_SERVICES_DIR/mariadb" port user_opt=""
    port=$(free_port)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown "$AUTHSTAT_DB_USER" "$dir"
        user_opt="--user=$AUTHSTAT_DB_USER"
    fi
    as_db_user "mariadb-install-db --no-defaults --datadir='$dir/data' --skip-test-db \
        --auth-root-authentication-method=normal >'$dir/install.log' 2>&1" ||
        services_fail "MariaDB: mariadb-install-db failed: $(tail -3 "$dir/install.log")"
    # A throwaway server on loopback, for tests only: root without a password. Grant tables
    # are on, so that tests can make users with fewer rights (a read-only user).
    mariadbd --no-defaults $user_opt --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1 \
        --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
        --innodb-flush-log-at-trx-commit=2 --max-connections=300 \
        --ssl-ca="$AUTHSTAT_SERVICES_DIR/tls/ca.pem" --ssl-cert="$AUTHSTAT_SERVICES_DIR/tls/mysql-server.pem" \
        --ssl-key="$AUTHSTAT_SERVICES_DIR/tls/mysql-server.key" \
        >"$dir/stdout.log" 2>&1 &
    wait_for 60 "MariaDB" mariadb-admin --no-defaults --socket="$dir/mysqld.sock" -uroot ping ||
        services_fail "MariaDB: the server did not answer within 60 s: $(tail -5 "$dir/error.log")"
    mariadb --no-defaults --socket="$dir/mysqld.sock" -uroot -e \
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; \
         GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
         CREATE USER IF NOT EXISTS 'authstat_tls'@'127.0.0.1' REQUIRE SUBJECT '/CN=authstat_tls'; \
         GRANT ALL PRIVILEGES ON *.* TO 'authstat_tls'@'127.0.0.1';" ||
        services_fail "MariaDB: root could not be allowed on 127.0.0.1"
    export AUTHSTAT_TEST_MYSQL_URL="mysql://root@127.0.0.1:$port/mysql"
    echo "scripts/test: MariaDB on 127.0.0.1:$port" >&2
}

stop_mariadb() {
    local pidfile="$AUTHSTAT_SERVICES_DIR/mariadb/mysqld.pid" pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    return 0
}

start_mongodb() {
    # The MongoDB wire-protocol test server from npm (no MongoDB server is packaged here;
    # production uses a real MongoDB 6 or later).
    local cache="$AUTHSTAT_SERVICES_ROOT/.test-services/jongodb" dir="$AUTHSTAT_SERVICES_DIR/mongodb" port
    if [ ! -x "$cache/package/bin/jongodb" ]; then
        # The package's tarball from the npm registry (npm itself is not needed), checked
        # against the digest recorded here.
        need_packages curl ca-certificates
        mkdir -p "$cache"
        curl -fsSL --retry 3 -o "$cache/jongodb.tgz" "$JONGODB_TARBALL" 2>"$cache/download.log" ||
            services_fail "MongoDB test server: downloading $JONGODB_TARBALL failed: $(tail -3 "$cache/download.log")"
        echo "$JONGODB_SHA256  $cache/jongodb.tgz" | sha256sum --check --status ||
            services_fail "MongoDB test server: $JONGODB_TARBALL does not have the recorded SHA-256"
        tar xzf "$cache/jongodb.tgz" -C "$cache" ||
            services_fail "MongoDB test server: cannot unpack $cache/jongodb.tgz"
    fi
    port=$(free_port)
    mkdir -p "$dir"
    "$cache/package/bin/jongodb" --host=127.0.0.1 --port="$port" >"$dir/server.log" 2>&1 &
    echo $! >"$dir/pid"
    wait_for 30 "MongoDB" grep -q JONGODB_URI "$dir/server.log" ||
        services_fail "MongoDB test server did not start: $(tail -5 "$dir/server.log")"
    export AUTHSTAT_TEST_MONGODB_URI="mongodb://127.0.0.1:$port"
    echo "scripts/test: MongoDB-protocol test server (jongodb) on 127.0.0.1:$port" >&2
}

stop_mongodb() {
    local pidfile="$AUTHSTAT_SERVICES_DIR/mongodb/pid"
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
    return 0
}

start_activemq() {
    # Debian's ActiveMQ 5.17, run by hand: its launcher forces a 512 MB heap, and its default
    # instance has OpenWire only. This one listens on free loopback ports with a STOMP connector
    # and wants a login (authstat / authstat-test), as production brokers should; and a STOMP
    # over TLS connector (stomp+ssl) with a self-signed certificate for 127.0.0.1, made here;
    # and one more that requires a client certificate signed by the run's test CA.
    need_packages activemq
    local dir="$AUTHSTAT_SERVICES_DIR/activemq" openwire stomp stomps stompm
    openwire=$(free_port)
    stomp=$(free_port)
    stomps=$(free_port)
    stompm=$(free_port)
    mkdir -p "$dir/conf" "$dir/data" "$dir/tmp"
    cp /etc/activemq/instances-available/main/log4j2.properties "$dir/conf/"
    keytool -genkeypair -alias broker -keyalg RSA -keysize 2048 -dname "CN=127.0.0.1" \
        -ext "SAN=ip:127.0.0.1,dns:localhost" -validity 3650 -storetype PKCS12 \
        -keystore "$dir/conf/broker.p12" -storepass authstat-test -keypass authstat-test \
        >"$dir/keytool.log" 2>&1 &&
        keytool -exportcert -rfc -alias broker -keystore "$dir/conf/broker.p12" \
            -storepass authstat-test -file "$dir/conf/broker.pem" >>"$dir/keytool.log" 2>&1 &&
        keytool -importcert -noprompt -alias test-ca -file "$AUTHSTAT_SERVICES_DIR/tls/ca.pem" \
            -storetype PKCS12 -keystore "$dir/conf/clients.p12" -storepass authstat-test \
            >>"$dir/keytool.log" 2>&1 ||
        services_fail "ActiveMQ: keytool could not make the broker's certificate: $(tail -3 "$dir/keytool.log")"
    sed -e "s|<transportConnector name=\"openwire\" uri=\"tcp://127.0.0.1:61616\"/>|<transportConnector name=\"openwire\" uri=\"tcp://127.0.0.1:$openwire\"/><transportConnector name=\"stomp\" uri=\"stomp://127.0.0.1:$stomp\"/><transportConnector name=\"stomp+ssl\" uri=\"stomp+ssl://127.0.0.1:$stomps\"/><transportConnector name=\"stomp+ssl-mutual\" uri=\"stomp+ssl://127.0.0.1:$stompm?needClientAuth=true\"/>|" \
        -e "s|</transportConnectors>|</transportConnectors><plugins><simpleAuthenticationPlugin><users><authenticationUser username=\"authstat\" password=\"authstat-test\" groups=\"users,admins\"/></users></simpleAuthenticationPlugin></plugins><sslContext><sslContext keyStore=\"file:$dir/conf/broker.p12\" keyStorePassword=\"authstat-test\" keyStoreType=\"PKCS12\" trustStore=\"file:$dir/conf/clients.p12\" trustStorePassword=\"authstat-test\" trustStoreType=\"PKCS12\"/></sslContext>|" \
        /etc/activemq/instances-available/main/activemq.xml >"$dir/conf/activemq.xml"
    grep -q "stomp+ssl://127.0.0.1:$stomps" "$dir/conf/activemq.xml" ||
        services_fail "ActiveMQ: the STOMP connectors could not be added to activemq.xml"
    cat >"$dir/start.sh" <<EOS
#!/bin/sh
cd '$dir' && java -Xms64M -Xmx256M -Dactivemq.home=/usr/share/activemq -Dactivemq.base='$dir' \\
    -Dactivemq.conf='$dir/conf' -Dactivemq.data='$dir/data' -Djava.io.tmpdir='$dir/tmp' \\
    -jar /usr/share/activemq/bin/activemq.jar start 'xbean:file:$dir/conf/activemq.xml' \\
    >>'$dir/broker.log' 2>&1 &
echo \$! >'$dir/pid'
for i in \$(seq 1 300); do
    python3 -c 'import socket; [socket.create_connection(("127.0.0.1", p), 1).close() for p in ($stomp, $stomps, $stompm)]' 2>/dev/null && exit 0
    sleep 0.2
done
echo "ActiveMQ did not listen on $stomp within 60 s" >&2
exit 1
EOS
    cat >"$dir/stop.sh" <<EOS
#!/bin/sh
pid=\$(cat '$dir/pid' 2>/dev/null) || exit 0
kill "\$pid" 2>/dev/null || exit 0
for i in \$(seq 1 300); do kill -0 "\$pid" 2>/dev/null || exit 0; sleep 0.1; done
kill -9 "\$pid" 2>/dev/null
exit 0
EOS
    chmod +x "$dir/start.sh" "$dir/stop.sh"
    "$dir/start.sh" || services_fail "ActiveMQ did not start: $(tail -5 "$dir/broker.log")"
    export AUTHSTAT_TEST_STOMP_ADDR="127.0.0.1:$stomp"
    export AUTHSTAT_TEST_STOMP_SSL_ADDR="127.0.0.1:$stomps"
    export AUTHSTAT_TEST_STOMP_MTLS_ADDR="127.0.0.1:$stompm"
    export AUTHSTAT_TEST_ACTIVEMQ_DIR="$dir"
    echo "scripts/test: ActiveMQ (STOMP) on 127.0.0.1:$stomp, STOMP over TLS on 127.0.0.1:$stomps" >&2
}

stop_activemq() {
    local dir="$AUTHSTAT_SERVICES_DIR/activemq"
    [ -x "$dir/stop.sh" ] && "$dir/stop.sh"
    return 0
}

start_services() {
    AUTHSTAT_SERVICES_DIR=$(mktemp -d -t authstat-services.XXXXXX)
    chmod 755 "$AUTHSTAT_SERVICES_DIR"
    if [ "$(id -u)" = 0 ] && ! id -u "$AUTHSTAT_DB_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$AUTHSTAT_DB_USER" ||
            services_fail "could not create the user $AUTHSTAT_DB_USER for the database servers"
    fi
    make_test_ca
    start_postgres
    start_mariadb
    start_mongodb
    start_activemq
}

stop_services() {
    [ -n "$AUTHSTAT_SERVICES_DIR" ] || return 0
    stop_activemq
    stop_mongodb
    stop_mariadb
    stop_postgres
    rm -rf "$AUTHSTAT_SERVICES_DIR"
}
