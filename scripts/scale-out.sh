#!/usr/bin/env bash
# Scale-out demo and test (`make scale-out`; `make test` runs it too): two instances of the
# dashboard example behind nginx, round-robin, with each session store in turn, checked over
# real sockets with curl:
#   1. visits go on across instances (the same session, whichever instance answers);
#   2. a logout on instance A is honoured on instance B: with Redis an old cookie replayed on
#      B is dead; with the cookie store it still counts on (a signed cookie cannot be revoked
#      on the server: the documented difference, see the README's "Scaling out");
#   3. a session survives one instance being stopped (nginx sends its requests to the other).
# It starts what it needs and stops it by PID at the end: redis-server (no persistence, a temp
# dir), the two instances and nginx (deploy/nginx/nginx.conf + chirp.conf, their ports
# replaced by free loopback ones). redis-server, nginx and curl are installed with apt-get when
# missing (as root). Ends with the line `N passed, M failed`; exits non-zero on any failure.
#
#   PROFILE=release       build and run the example in release mode (default: debug, which
#                         `make test` has built already)
#   SCALE_OUT_OPTIONAL=1  (set by `make test`) a missing tool that cannot be installed skips
#                         this, saying so, unless CI=true
set -uo pipefail
cd "$(dirname "$0")/.."

die() { echo "scale-out: $*" >&2; exit 2; }

need() { # need <command> <Debian package>
    command -v "$1" >/dev/null && return
    [[ -x /usr/sbin/$1 ]] && return
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "== installing $2 (apt-get)" >&2
        bash scripts/apt-install.sh "$2" >&2 || die "could not install $2"
    elif [[ ${SCALE_OUT_OPTIONAL:-} == 1 && ${CI:-} != true ]]; then
        # From `make test` on a machine where nothing can be installed: said, not failed.
        echo "SKIPPED scripts/scale-out.sh: no $1 (apt-get install $2); CI=true makes this a failure"
        exit 0
    else
        die "$1 is missing: apt-get install $2"
    fi
}
need redis-server redis-server
need nginx nginx
need curl curl
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

PROFILE=${PROFILE:-debug}
build=(cargo build --locked --features redis --example dashboard)
[[ $PROFILE == release ]] && build+=(--release)
echo "== ${build[*]}" >&2
"${build[@]}" >&2 || die "build failed"
BIN=target/$PROFILE/examples/dashboard

WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

source scripts/lib.sh
up() { wait_port "$@" || die "see the logs in $WORK"; } # up <port> <what>

mkdir "$WORK/redis"
start_redis "$WORK/redis"
started=$?
PIDS+=("$REDIS_PID")
[[ $started == 0 ]] || die "see the logs in $WORK"
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
# One secret for every instance: each must verify what the others signed. Without it, each
# instance would make a random secret of its own (and warn): checks 1 and 3 below would fail.
export CHIRP_SECRET_KEY=scale-out-demo-secret-0123456789abcdef0123456789abcdef

PASSED=0
FAILED=0
check() { # check <what> <expected> <got>
    if [[ $2 == "$3" ]]; then
        PASSED=$((PASSED + 1))
        echo "ok     $1"
    else
        FAILED=$((FAILED + 1))
        echo "FAILED $1"
        echo "       expected: $2"
        echo "       got:      $3"
    fi
}

# get <url>: sends the cookie kept in $WORK/cookie (if any), keeps the one the response sets
# there, and prints "<body> <instance that answered>".
get() {
    local headers=$WORK/headers body set instance
    : >"$headers"
    local cookie=()
    [[ -s $WORK/cookie ]] && cookie=(-H "Cookie: $(cat "$WORK/cookie")")
    body=$(curl -s --max-time 5 -D "$headers" "${cookie[@]}" "$1") || body="(no answer)"
    set=$(tr -d '\r' <"$headers" | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | tail -1)
    [[ -n $set ]] && echo "$set" >"$WORK/cookie"
    instance=$(tr -d '\r' <"$headers" | sed -n 's/^[Xx]-[Cc]hirp-[Ii]nstance: //p')
    echo "$body ${instance:-?}"
}
new_session() { rm -f "$WORK/cookie"; }
post() { # post <url> <cookie>: prints the body
    curl -s --max-time 5 -X POST -H "Cookie: $2" "$1" || echo "(no answer)"
}

# start_instance <name> <port> <store>: prints its PID
start_instance() {
    CHIRP_INSTANCE=$1 CHIRP_ADDR=127.0.0.1:$2 CHIRP_SESSION_STORE=$3 "$BIN" \
        >"$WORK/$1-$3.log" 2>&1 &
    echo $!
}

run_store() {
    local store=$1
    echo "== $store sessions: instances a and b behind nginx"
    local port_a port_b lb
    port_a=$(free_port)
    port_b=$(free_port)
    lb=$(free_port)
    local pid_a pid_b pid_nginx
    pid_a=$(start_instance a "$port_a" "$store")
    pid_b=$(start_instance b "$port_b" "$store")
    PIDS+=("$pid_a" "$pid_b")
    up "$port_a" "instance a"
    up "$port_b" "instance b"
    check "$store: both instances sign with CHIRP_SECRET_KEY (no random secret)" "" \
        "$(grep -l 'random secret' "$WORK/a-$store.log" "$WORK/b-$store.log")"

    local prefix=$WORK/nginx-$store
    mkdir -p "$prefix/tmp"
    chmod 777 "$prefix/tmp" # the workers (nobody, when started as root) write there
    cp deploy/nginx/nginx.conf "$prefix/"
    sed -e "s/127.0.0.1:8001/127.0.0.1:$port_a/" -e "s/127.0.0.1:8002/127.0.0.1:$port_b/" \
        -e "s/listen 127.0.0.1:8080/listen 127.0.0.1:$lb/" deploy/nginx/chirp.conf >"$prefix/chirp.conf"
    "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' >"$prefix/stderr" 2>&1 &
    pid_nginx=$!
    PIDS+=("$pid_nginx")
    up "$lb" nginx
    local via=http://127.0.0.1:$lb

    # 1. Round-robin: four requests, two per instance, one session.
    new_session
    local bodies="" instances="" answer
    for _ in 1 2 3 4; do
        answer=$(get "$via/dashboard")
        bodies+="${answer% *}; "
        instances+="${answer##* } "
    done
    check "$store: visits go on across instances" \
        "Visits: 1; Visits: 2; Visits: 3; Visits: 4; " "$bodies"
    check "$store: nginx spread them over both instances (sorted)" "a a b b" \
        "$(tr ' ' '\n' <<<"$instances" | grep . | sort | paste -sd ' ')"

    # 2. Logout on A, the old cookie replayed on B.
    local old
    old=$(cat "$WORK/cookie")
    check "$store: logout on instance a" "Logged out" "$(post "http://127.0.0.1:$port_a/logout" "$old")"
    local replay
    echo "$old" >"$WORK/cookie"
    replay=$(get "http://127.0.0.1:$port_b/dashboard")
    if [[ $store == redis ]]; then
        check "redis: the logged-out cookie is dead on instance b" "Visits: 1 b" "$replay"
    else
        check "cookie: the logged-out cookie still counts on, on instance b (a signed cookie cannot be revoked)" \
            "Visits: 5 b" "$replay"
    fi

    # 3. A new session; instance a stops; the session goes on through b.
    new_session
    bodies=""
    for _ in 1 2; do
        answer=$(get "$via/dashboard")
        bodies+="${answer% *}; "
    done
    kill "$pid_a"
    wait "$pid_a" 2>/dev/null
    instances=""
    for _ in 1 2 3; do
        answer=$(get "$via/dashboard")
        bodies+="${answer% *}; "
        instances+="${answer##* } "
    done
    check "$store: the session survives instance a stopped" \
        "Visits: 1; Visits: 2; Visits: 3; Visits: 4; Visits: 5; " "$bodies"
    check "$store: instance b answered everything after a stopped" "b b b " "$instances"

    kill "$pid_nginx" "$pid_b" 2>/dev/null
    wait "$pid_nginx" "$pid_b" 2>/dev/null
}

run_store cookie
run_store redis
echo "$PASSED passed, $FAILED failed"
[[ $FAILED == 0 ]]
