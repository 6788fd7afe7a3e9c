#!/usr/bin/env bash
# Scale-out demo and test (`make scale-out`; `make test` runs it too): two instances of the
# dashboard example behind nginx, round-robin, with each session store in turn, checked over
# real sockets with curl:
#   1. visits go on across instances (the same session, whichever instance answers);
#   2. a logout on instance A is honoured on instance B: with Redis an old cookie replayed on
#      B is dead; with the cookie store it still counts on (a signed cookie cannot be revoked
#      on the server: the documented difference, see the README's "Scaling out");
#   3. a session survives one instance being stopped (nginx sends its requests to the other).
# Then two instances of the chat example (built with --features redis; one CHIRP_SECRET_KEY,
# one REDIS_URL) behind nginx configured for WebSocket upgrades, checked with a Python client
# (scripts/scale-out-chat.py, websockets from the test venv):
#   4. a chat message sent by a socket connected through instance a reaches a socket connected
#      through instance b, and its sender; and the other way round (each user logged in through
#      the other instance: the session is good on both);
#   5. an SSE reader of /events on instance b gets the message published through a;
#   6. a foreign Origin is still refused (403) through nginx.
# Each chat client is pinned to one instance by a location of its own in nginx (/a/ only
# proxies to instance a, /b/ only to b; the prefix is stripped): round-robin could put both
# sockets on the same instance, which would pass without Redis carrying anything, and going
# through nginx for both checks its WebSocket configuration too.
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
# The chat client's Python: CHIRP_PYTHON (as scripts/test.sh exports it), else the test venv.
PYTHON=${CHIRP_PYTHON:-${CHIRP_VENV:-target/python-venv}/bin/python}
CHAT_CLIENT=yes
if ! "$PYTHON" -c 'import websockets' 2>/dev/null; then
    # From `make test` on a machine without the venv: the chat part skipped, saying so.
    [[ ${SCALE_OUT_OPTIONAL:-} == 1 && ${CI:-} != true ]] ||
        die "no Python with websockets at $PYTHON: run scripts/test.sh once (it makes the venv), or set CHIRP_PYTHON"
    CHAT_CLIENT=
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

PROFILE=${PROFILE:-debug}
build=(cargo build --locked --features redis --example dashboard --example chat)
[[ $PROFILE == release ]] && build+=(--release)
echo "== ${build[*]}" >&2
"${build[@]}" >&2 || die "build failed"
BIN=target/$PROFILE/examples/dashboard
CHAT_BIN=target/$PROFILE/examples/chat

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

# The chat example: instances a and b (Redis hub), nginx with a location pinned to each.
run_chat() {
    echo "== chat: instances a and b (Redis hub) behind nginx, WebSocket upgrades"
    local port_a port_b lb pid_a pid_b pid_nginx
    port_a=$(free_port)
    port_b=$(free_port)
    lb=$(free_port)
    NO_COLOR=1 CHIRP_ADDR=127.0.0.1:$port_a "$CHAT_BIN" >"$WORK/chat-a.log" 2>&1 &
    pid_a=$!
    NO_COLOR=1 CHIRP_ADDR=127.0.0.1:$port_b "$CHAT_BIN" >"$WORK/chat-b.log" 2>&1 &
    pid_b=$!
    PIDS+=("$pid_a" "$pid_b")
    up "$port_a" "chat instance a"
    up "$port_b" "chat instance b"

    local prefix=$WORK/nginx-chat
    mkdir -p "$prefix/tmp"
    chmod 777 "$prefix/tmp"
    cp deploy/nginx/nginx.conf "$prefix/"
    # Host is passed on with its port ($http_host, not $host): the instance compares the page's
    # Origin with it. proxy_pass with a URI (the trailing /) strips the /a/ or /b/ prefix.
    cat >"$prefix/chirp.conf" <<EOF
upstream chat_a { server 127.0.0.1:$port_a; }
upstream chat_b { server 127.0.0.1:$port_b; }
server {
    listen 127.0.0.1:$lb;
    proxy_http_version 1.1;
    proxy_set_header Upgrade \$http_upgrade;
    proxy_set_header Connection "upgrade";
    proxy_set_header Host \$http_host;
    proxy_buffering off;
    proxy_read_timeout 1h;
    location /a/ { proxy_pass http://chat_a/; }
    location /b/ { proxy_pass http://chat_b/; }
}
EOF
    "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' >"$prefix/stderr" 2>&1 &
    pid_nginx=$!
    PIDS+=("$pid_nginx")
    up "$lb" nginx

    local out
    out=$(timeout 40 "$PYTHON" scripts/scale-out-chat.py "$lb" 2>&1)
    observed() { awk -F '\t' -v k="$1" '$1 == k { print $2 }' <<<"$out"; }
    local failed_before=$FAILED
    check "chat: no client error" "" "$(observed error)"
    check "chat: log in through one instance (CSRF token from its form), for a socket on the other" "ok" "$(observed login)"
    check "chat: GET /events through b" "HTTP/1.1 200 OK" "$(observed events_b_status)"
    check "chat: the sender on a hears its own message" '{"user":"alice","text":"from a"}' \
        "$(observed a_hears_own)"
    check "chat: a message sent through a reaches the socket on b" \
        '{"user":"alice","text":"from a"}' "$(observed b_hears_a)"
    check "chat: the sender on b hears its own message" '{"user":"bob","text":"from b"}' \
        "$(observed b_hears_own)"
    check "chat: a message sent through b reaches the socket on a" \
        '{"user":"bob","text":"from b"}' "$(observed a_hears_b)"
    check "chat: an SSE reader on b gets the message published through a" \
        '{"user":"alice","text":"from a"}' "$(observed events_b_hears_a)"
    check "chat: a foreign Origin is refused through nginx" "403" "$(observed foreign_origin)"
    # Each instance answered its own client's upgrade (the pinning worked): its access log.
    check "chat: instance a answered a /ws/chat upgrade (alice's)" "1" \
        "$(grep -c 'path=/ws/chat status=101' "$WORK/chat-a.log")"
    check "chat: instance b answered a /ws/chat upgrade (bob's)" "1" \
        "$(grep -c 'path=/ws/chat status=101' "$WORK/chat-b.log")"
    [[ $FAILED == "$failed_before" ]] || { echo "== the client said:"; echo "$out"; }

    kill "$pid_nginx" "$pid_a" "$pid_b" 2>/dev/null
    wait "$pid_nginx" "$pid_a" "$pid_b" 2>/dev/null
}

run_store cookie
run_store redis
if [[ -n $CHAT_CLIENT ]]; then
    run_chat
else
    echo "SKIPPED the chat checks: no Python with websockets at $PYTHON (make test makes the venv); CI=true makes this a failure"
fi
echo "$PASSED passed, $FAILED failed"
[[ $FAILED == 0 ]]
