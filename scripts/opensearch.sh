#!/usr/bin/env bash
# Run a real single-node OpenSearch on 127.0.0.1 for the tests, the local demo and CI.
#
#   scripts/opensearch.sh start    start a node (or reuse a healthy one) and wait until it is healthy;
#                                  prints its URL on stdout, progress on stderr
#   scripts/opensearch.sh stop     stop what this script started on the port (nothing else);
#                                  stopping when nothing runs is not an error
#   scripts/opensearch.sh status   prints "running <dist> <version> at <url>" (exit 0) or "stopped" (exit 3)
#   scripts/opensearch.sh url      prints the URL
#   scripts/opensearch.sh logs [-f] the last 100 lines of the node's log (-f: follow)
#
# Environment (defaults in brackets):
#   OPENSEARCH_VERSION   [2.19.6, or 7.10.2 with OPENSEARCH_DIST=elasticsearch]
#   OPENSEARCH_DIST      [opensearch] or elasticsearch (Elasticsearch OSS, integ-test-zip from Maven Central)
#   OPENSEARCH_PORT      [9200] HTTP port on 127.0.0.1
#   OPENSEARCH_TRANSPORT_PORT [OPENSEARCH_PORT + 100] node-to-node port (zip path only)
#   OPENSEARCH_HEAP      [512m] JVM -Xms/-Xmx
#   OPENSEARCH_SETTINGS  [none] node settings, space-separated key=value pairs, passed to the node as
#                        -E key=value (Docker: -e key=value), e.g. a node whose write queue rejects
#                        under load: OPENSEARCH_SETTINGS="thread_pool.write.size=1 thread_pool.write.queue_size=2".
#                        Values: letters, digits and _ . , : / % * + - only. The script's own settings
#                        (network.*, *.host, http.port, transport.port, path.*, discovery.*, cluster.name,
#                        node.name) cannot be overridden: the node stays on 127.0.0.1. A node of ours that
#                        runs with other settings is not reused (stop it or pick another OPENSEARCH_PORT);
#                        another cluster, or OPENSEARCH_URL's, is reused only if every node reports every
#                        setting in GET _nodes/settings. An unknown setting makes the node fail at start.
#   OPENSEARCH_DOCKER    [auto] auto: use Docker when `docker info` works, else the zip;
#                        never: always the zip; always: Docker or fail
#   OPENSEARCH_URL       if set and a healthy cluster answers there, `start` reuses it and starts nothing
#   OPENSEARCH_START_TIMEOUT [180] seconds to wait for the node to become healthy
#   OPENSEARCH_JAVA_HOME Java for the zip path; by default the default `java` if its version fits,
#                        else the newest fitting JDK under /usr/lib/jvm (OpenSearch 3.x needs 21+,
#                        OpenSearch 1.x/2.x runs on 11..23, Elasticsearch 7.10 on 11..17)
#   OPENSEARCH_RUN_AS    [nobody] user the node runs as when this script runs as root
#                        (OpenSearch refuses to run as root and has no option to allow it)
#   OPENSEARCH_WORK_DIR  [<repo>/target/opensearch] unpacked distributions (dist/) and per-node state
#                        (<dist>-<version>-<port>/: config, data, logs, tmp, node.pid or container.id)
#   OPENSEARCH_M2_REPO   [~/.m2/repository] local Maven repository the zip is fetched into
#   OPENSEARCH_STARTED_FILE  if set, `start` writes "started" into this file when it launched a node
#                        (written as soon as the node is launched) or "reused" when it reused one.
#                        scripts/with-opensearch.sh uses it to stop only nodes it started.
#
# Zip path: fetches org.opensearch.distribution.integ-test-zip:opensearch:<version>:zip (plain HTTP,
# no security plugin, only the transport-netty4 module: no analysis-common, ingest-common, painless...)
# with Maven and runs bin/opensearch -d. Docker path: runs opensearchproject/opensearch:<version> with
# the security plugin disabled. Either way the node listens on 127.0.0.1 only, without auth.
# Data is kept across stop/start; for a clean node, stop it and remove its state directory.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf 'opensearch.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

DIST=${OPENSEARCH_DIST:-opensearch}
case $DIST in
  opensearch)
    VERSION=${OPENSEARCH_VERSION:-2.19.6}
    ENV_PREFIX=OPENSEARCH  # the launcher reads OPENSEARCH_JAVA_OPTS, OPENSEARCH_PATH_CONF, ...
    IMAGE=opensearchproject/opensearch
    ;;
  elasticsearch)
    VERSION=${OPENSEARCH_VERSION:-7.10.2}
    ENV_PREFIX=ES
    IMAGE=docker.elastic.co/elasticsearch/elasticsearch-oss
    ;;
  *) die "OPENSEARCH_DIST must be opensearch or elasticsearch, not '$DIST'" ;;
esac
[[ $VERSION =~ ^([0-9]+)\.[0-9]+\.[0-9]+$ ]] || die "OPENSEARCH_VERSION must look like 2.19.6, not '$VERSION'"
MAJOR=${BASH_REMATCH[1]}
PORT=${OPENSEARCH_PORT:-9200}
if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
  die "OPENSEARCH_PORT must be a port number, not '$PORT'"
fi
TRANSPORT_PORT=${OPENSEARCH_TRANSPORT_PORT:-$((PORT + 100))}
HEAP=${OPENSEARCH_HEAP:-512m}
[[ $HEAP =~ ^[0-9]+[kKmMgG]$ ]] || die "OPENSEARCH_HEAP must look like 512m or 1g, not '$HEAP'"

# OPENSEARCH_SETTINGS as key=value words in SETTINGS, and SETTINGS_TEXT: the same sorted on one line,
# which is what a node's state dir records (settings) and what reuse compares.
SETTINGS=()
parse_settings() {
  local word key seen=" "
  local - # restores the shell options (set -f) on return
  set -f  # a value may hold '*': no globbing while splitting on whitespace
  for word in ${OPENSEARCH_SETTINGS:-}; do
    [[ $word =~ ^([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)=([A-Za-z0-9_.,:/%*+-]+)$ ]] ||
      die "OPENSEARCH_SETTINGS: '$word' is not key=value (a dotted setting name; a value of letters, digits and _ . , : / % * + -)"
    key=${BASH_REMATCH[1]}
    case $key in
      network.* | *.host | *.bind_host | *.publish_host | http.port | http.publish_port | \
        transport.port | transport.publish_port | path.* | discovery.* | cluster.name | node.name | \
        cluster.routing.allocation.disk.threshold_enabled)
        die "OPENSEARCH_SETTINGS: $key is set by this script (the node listens on 127.0.0.1 only; use OPENSEARCH_PORT, OPENSEARCH_TRANSPORT_PORT or OPENSEARCH_WORK_DIR)"
        ;;
    esac
    [[ $seen != *" $key "* ]] || die "OPENSEARCH_SETTINGS: $key is given twice"
    seen+="$key "
    SETTINGS+=("$word")
  done
}
parse_settings
SETTINGS_TEXT=$(printf '%s\n' ${SETTINGS[@]+"${SETTINGS[@]}"} | LC_ALL=C sort | paste -sd ' ' -)
DOCKER_MODE=${OPENSEARCH_DOCKER:-auto}
TIMEOUT=${OPENSEARCH_START_TIMEOUT:-180}
WORK_DIR=${OPENSEARCH_WORK_DIR:-$REPO_ROOT/target/opensearch}
M2_REPO=${OPENSEARCH_M2_REPO:-$HOME/.m2/repository}
EXTERNAL_URL=${OPENSEARCH_URL:-}
EXTERNAL_URL=${EXTERNAL_URL%/}
LOCAL_URL=http://127.0.0.1:$PORT
CLUSTER_NAME=cwl-indexer-local
DIST_HOME=$WORK_DIR/dist/$DIST-$VERSION
CONTAINER_NAME=cwl-indexer-$DIST-$PORT
# A dummy: the image's demo-security setup (skipped here anyway) refuses to run without a strong one.
DOCKER_ADMIN_PASSWORD='Cwl-Indexer-Local-1!'

# Per-node state. set_state_dir points these at one node's directory.
set_state_dir() {
  STATE_DIR=$1
  PID_FILE=$STATE_DIR/node.pid
  CONTAINER_FILE=$STATE_DIR/container.id
  CONF_DIR=$STATE_DIR/config
  LOG_DIR=$STATE_DIR/logs
  NODE_LOG=$LOG_DIR/$CLUSTER_NAME.log
  STARTUP_LOG=$STATE_DIR/startup.log
  SETTINGS_FILE=$STATE_DIR/settings
  case ${STATE_DIR##*/} in
    elasticsearch-*) STATE_CONF_PROP=-Des.path.conf ;;
    *) STATE_CONF_PROP=-Dopensearch.path.conf ;;
  esac
}
set_state_dir "$WORK_DIR/$DIST-$VERSION-$PORT"

# ---------------------------------------------------------------------------------------------
# HTTP checks

# A cluster answers at $1 with status yellow or green.
healthy() {
  curl -fsS -o /dev/null --noproxy 127.0.0.1,localhost --max-time 10 \
    "$1/_cluster/health?wait_for_status=yellow&timeout=5s" 2>/dev/null
}

# "<dist> <version>" of the cluster at $1, from GET /.
cluster_info() {
  local body number distribution
  body=$(curl -fsS --noproxy 127.0.0.1,localhost --max-time 5 "$1/" 2>/dev/null | tr -d ' \n\r') || return 1
  number=$(sed -n 's/.*"number":"\([^"]*\)".*/\1/p' <<<"$body")
  distribution=$(sed -n 's/.*"distribution":"\([^"]*\)".*/\1/p' <<<"$body")
  [[ -n $number ]] || return 1
  echo "${distribution:-elasticsearch} $number"
}

# Prints the settings of SETTINGS that not every node of the cluster at $1 reports in
# GET _nodes/settings (flat), or why they could not be read; prints nothing when all are there.
settings_missing() {
  local body total word key value list missing=()
  body=$(curl -fsS --noproxy 127.0.0.1,localhost --max-time 10 \
    "$1/_nodes/settings?flat_settings=true&filter_path=_nodes.total,nodes.*.settings" 2>/dev/null |
    tr -d ' \n\r') || {
    echo "(GET $1/_nodes/settings failed)"
    return 0
  }
  total=$(sed -n 's/.*"_nodes":{"total":\([0-9]*\).*/\1/p' <<<"$body")
  [[ -n $total ]] || total=0
  for word in ${SETTINGS[@]+"${SETTINGS[@]}"}; do
    key=${word%%=*} value=${word#*=}
    list="\"$key\":[\"${value//,/\",\"}\"]" # a list setting given as a,b is reported as ["a","b"]
    if (($(grep -oF "\"$key\":\"$value\"" <<<"$body" | wc -l) + $(grep -oF "$list" <<<"$body" | wc -l) < total)) ||
      ((total == 0)); then
      missing+=("$word")
    fi
  done
  if ((${#missing[@]} > 0)); then echo "${missing[*]}"; fi
  return 0
}

# Settings recorded for the node of state dir $1 (empty for none, or a node started before they were recorded).
recorded_settings() { if [[ -f $1/settings ]]; then cat "$1/settings"; fi; }

# Reusing the node of state dir $1 gives the caller the settings it asked for, or the script stops.
require_same_settings() {
  local had
  had=$(recorded_settings "$1")
  [[ $had == "$SETTINGS_TEXT" ]] ||
    die "the node of ours at $LOCAL_URL runs with OPENSEARCH_SETTINGS '${had}', not '${SETTINGS_TEXT}': stop it first (scripts/opensearch.sh stop) or set OPENSEARCH_PORT to another port"
}

# Reusing the cluster at $1, which this script did not start: every requested setting must be in force.
require_settings_in_force() {
  local missing
  ((${#SETTINGS[@]} > 0)) || return 0
  missing=$(settings_missing "$1")
  [[ -z $missing ]] ||
    die "the cluster at $1 does not report OPENSEARCH_SETTINGS $missing in _nodes/settings: for a node of this script's own, unset OPENSEARCH_URL or set OPENSEARCH_PORT to another port"
}

# Something listens on 127.0.0.1:$1 (bash's /dev/tcp).
port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Tell scripts/with-opensearch.sh whether this call launched the node.
mark() {
  if [[ -n ${OPENSEARCH_STARTED_FILE:-} ]]; then
    printf '%s\n' "$1" >"$OPENSEARCH_STARTED_FILE"
  fi
}

# ---------------------------------------------------------------------------------------------
# Processes (zip path)

# $1 is a live node JVM of the current state dir (guards against a recycled pid).
is_our_node() {
  local args
  args=$(ps -ww -o args= -p "$1" 2>/dev/null) || return 1
  [[ " $args " == *" $STATE_CONF_PROP=$CONF_DIR "* ]]
}

# Pid of the current state dir's node: the pidfile, or (before the JVM has written it) the
# process whose command line carries this node's unique config path.
find_node_pid() {
  local pid args
  if [[ -s $PID_FILE ]]; then
    pid=$(tr -cd '0-9' <"$PID_FILE")
    if [[ -n $pid ]] && is_our_node "$pid"; then
      echo "$pid"
      return 0
    fi
  fi
  while read -r pid args; do
    if [[ " $args " == *" $STATE_CONF_PROP=$CONF_DIR "* ]]; then
      echo "$pid"
      return 0
    fi
  done < <(ps -ww -eo pid=,args= 2>/dev/null)
  return 1
}

rss_of() { ps -o rss= -p "$1" 2>/dev/null | awk '{printf "%d MiB", $1 / 1024}'; }

# TERM, wait up to 30 s, then KILL.
kill_node() {
  local pid=$1 i
  log "stopping node (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do
    is_our_node "$pid" || return 0
    sleep 1
  done
  log "node (pid $pid) still running after 30 s: sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 1
}

# Major version (8, 17, 21...) of the JDK at $1.
java_major() {
  local v=""
  if [[ -f $1/release ]]; then
    v=$(sed -n 's/^JAVA_VERSION="\([^"]*\)".*/\1/p' "$1/release")
  fi
  if [[ -z $v && -x $1/bin/java ]]; then
    v=$("$1/bin/java" -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n 1)
  fi
  v=${v#1.}
  echo "${v%%[!0-9]*}"
}

# The JDK to run this distribution with (prints its home).
choose_java() {
  local min max home major best="" best_major=0 default_home="" default_major=""
  if [[ $DIST == opensearch ]] && ((MAJOR >= 3)); then
    min=21 max=99
  elif [[ $DIST == opensearch ]]; then
    min=11 max=23 # 24+ removed the SecurityManager that 1.x/2.x need
  else
    min=11 max=17 # 7.10's jvm.options lack -Djava.security.manager=allow, needed on 18+
  fi
  if [[ -n ${OPENSEARCH_JAVA_HOME:-} ]]; then
    echo "$OPENSEARCH_JAVA_HOME"
    return
  fi
  if [[ -n ${JAVA_HOME:-} && -x ${JAVA_HOME}/bin/java ]]; then
    default_home=$JAVA_HOME
  elif command -v java >/dev/null 2>&1; then
    default_home=$(readlink -f "$(command -v java)")
    default_home=${default_home%/bin/java}
  fi
  if [[ -n $default_home ]]; then
    default_major=$(java_major "$default_home")
    if [[ -n $default_major ]] && ((default_major >= min && default_major <= max)); then
      echo "$default_home"
      return
    fi
  fi
  for home in /usr/lib/jvm/* /usr/lib64/jvm/* /Library/Java/JavaVirtualMachines/*/Contents/Home; do
    [[ -x $home/bin/java && ! -L $home ]] || continue
    major=$(java_major "$home")
    [[ -n $major ]] || continue
    if ((major >= min && major <= max && major > best_major)); then
      best=$home best_major=$major
    fi
  done
  if [[ -n $best ]]; then
    log "using Java $best_major from $best (default java is ${default_major:-missing})"
    echo "$best"
    return
  fi
  local want="Java $min..$max"
  ((max == 99)) && want="Java $min or newer"
  die "$DIST $VERSION needs $want; the default java is ${default_major:-missing}${default_home:+ ($default_home)} and none fits under /usr/lib/jvm: install one (e.g. apt-get install openjdk-$min-jdk-headless) or set OPENSEARCH_JAVA_HOME"
}

# ---------------------------------------------------------------------------------------------
# Distribution (zip path)

fetch_zip() {
  local group=org.$DIST.distribution.integ-test-zip
  local dir=${group//.//}/$DIST/$VERSION
  local zip=$M2_REPO/$dir/$DIST-$VERSION.zip
  if [[ -f $zip ]]; then
    echo "$zip"
    return
  fi
  if [[ -f $WORK_DIR/dist/$DIST-$VERSION.zip ]]; then # downloaded without Maven earlier
    echo "$WORK_DIR/dist/$DIST-$VERSION.zip"
    return
  fi
  if command -v mvn >/dev/null 2>&1; then
    log "fetching $group:$DIST:$VERSION:zip with Maven"
    mvn -q -B -Dstyle.color=never dependency:get -Dmaven.repo.local="$M2_REPO" \
      -Dartifact="$group:$DIST:$VERSION:zip" -Dtransitive=false >&2 ||
      die "Maven could not fetch $group:$DIST:$VERSION:zip; is $VERSION published? versions: https://repo1.maven.org/maven2/${dir%/*}/"
    [[ -f $zip ]] || die "Maven finished but $zip is missing"
  else
    # No Maven: the same artifact straight from Maven Central, checked against its .sha1.
    local url=https://repo1.maven.org/maven2/$dir/$DIST-$VERSION.zip
    zip=$WORK_DIR/dist/$DIST-$VERSION.zip
    log "mvn not found: downloading $url"
    curl -fsSL --retry 3 -o "$zip.part" "$url" || die "could not download $url; is $VERSION published?"
    local want got
    want=$(curl -fsSL --retry 3 "$url.sha1" | cut -c1-40) || die "could not download $url.sha1"
    got=$( (sha1sum "$zip.part" 2>/dev/null || shasum -a 1 "$zip.part") | cut -c1-40)
    [[ $want == "$got" ]] || die "checksum mismatch for $url"
    mv "$zip.part" "$zip"
  fi
  echo "$zip"
}

ensure_dist() {
  [[ -x $DIST_HOME/bin/$DIST ]] && return
  command -v unzip >/dev/null 2>&1 || die "unzip is needed to unpack $DIST $VERSION (apt-get install unzip)"
  mkdir -p "$WORK_DIR/dist"
  local zip tmp
  zip=$(fetch_zip)
  log "unpacking $zip into $DIST_HOME"
  tmp=$(mktemp -d "$WORK_DIR/dist/.unpack.XXXXXX")
  unzip -q "$zip" -d "$tmp"
  rm -rf "$DIST_HOME"
  mv "$tmp/$DIST-$VERSION" "$DIST_HOME"
  rm -rf "$tmp"
  chmod -R a+rX "$DIST_HOME" # readable by OPENSEARCH_RUN_AS when we run as root
}

# The minimal zip has no `geo` module, which OpenSearch 2.x/3.x keep `geohash_grid` and
# `geotile_grid` in (the Dashboards map uses them; every full distribution and Amazon OpenSearch
# Service has it). Its jar is on Maven Central: install it as a module, best effort.
ensure_geo_module() {
  [[ $DIST == opensearch && ${VERSION%%.*} -ge 2 ]] || return 0
  [[ -d $DIST_HOME/modules/geo ]] && return 0
  command -v mvn >/dev/null 2>&1 || { log "mvn not found: no geo module (geohash_grid unavailable)"; return 0; }
  local jar=$M2_REPO/org/opensearch/plugin/geo/$VERSION/geo-$VERSION.jar java=11
  [[ ${VERSION%%.*} -ge 3 ]] && java=21
  if [[ ! -f $jar ]]; then
    mvn -q -B -Dstyle.color=never dependency:get -Dmaven.repo.local="$M2_REPO" \
      -Dartifact="org.opensearch.plugin:geo:$VERSION:jar" -Dtransitive=false >&2 ||
      { log "could not fetch org.opensearch.plugin:geo:$VERSION: no geo module"; return 0; }
  fi
  mkdir -p "$DIST_HOME/modules/geo"
  cp "$jar" "$DIST_HOME/modules/geo/"
  cat >"$DIST_HOME/modules/geo/plugin-descriptor.properties" <<PROPS
description=Geospatial aggregations (added by scripts/opensearch.sh from Maven Central)
version=$VERSION
name=geo
classname=org.opensearch.geo.GeoModulePlugin
java.version=$java
opensearch.version=$VERSION
PROPS
  chmod -R a+rX "$DIST_HOME/modules/geo"
  log "added the geo module ($jar)"
}

# Fresh per-node copy of config/ (the node writes its keystore there) with the JVM's gc log,
# heap dumps and crash files moved out of the shared distribution into the node's directory,
# and the heap left to <PREFIX>_JAVA_OPTS.
prepare_state_dir() {
  mkdir -p "$STATE_DIR/data" "$LOG_DIR" "$STATE_DIR/tmp"
  rm -rf "$CONF_DIR"
  cp -R "$DIST_HOME/config" "$CONF_DIR"
  local esc_logs esc_state
  esc_logs=$(printf '%s' "$LOG_DIR" | sed 's/[\\&|]/\\&/g')
  esc_state=$(printf '%s' "$STATE_DIR" | sed 's/[\\&|]/\\&/g')
  sed -e '/^-Xm[sx]/d' \
    -e "s|logs/gc\.log|$esc_logs/gc.log|g" \
    -e 's|filecount=32,filesize=64m|filecount=2,filesize=16m|' \
    -e "s|HeapDumpPath=data|HeapDumpPath=$esc_state|" \
    -e "s|ErrorFile=logs/|ErrorFile=$esc_logs/|" \
    "$DIST_HOME/config/jvm.options" >"$CONF_DIR/jvm.options"
  rm -f "$PID_FILE"
  : >"$STARTUP_LOG"
  if [[ -f $NODE_LOG ]]; then LOG_OFFSET=$(wc -c <"$NODE_LOG"); fi
}

# ---------------------------------------------------------------------------------------------
# start

# Wait until the node at $LOCAL_URL is healthy; $1 is a command that fails once the node is gone.
wait_healthy() {
  local alive=$1 t0=$SECONDS next=15
  while ((SECONDS - t0 < TIMEOUT)); do
    healthy "$LOCAL_URL" && return 0
    if ! $alive; then
      log "the node exited during startup"
      return 1
    fi
    if ((SECONDS - t0 >= next)); then
      log "waiting for $LOCAL_URL ($((SECONDS - t0)) s)"
      next=$((next + 15))
    fi
    sleep 1
  done
  log "no healthy cluster at $LOCAL_URL after $TIMEOUT s"
  return 1
}

zip_node_alive() { find_node_pid >/dev/null; }
docker_node_alive() {
  [[ $(docker inspect -f '{{.State.Running}}' "$(cat "$CONTAINER_FILE")" 2>/dev/null) == true ]]
}

# The node log is appended to across runs: show only what this launch wrote (from byte LOG_OFFSET).
LOG_OFFSET=0
show_zip_logs() {
  if [[ -f $NODE_LOG ]] && (($(wc -c <"$NODE_LOG") > LOG_OFFSET)); then
    log "last 40 lines of $NODE_LOG:"
    tail -c +$((LOG_OFFSET + 1)) "$NODE_LOG" | tail -n 40 >&2
  fi
  if grep -qv '^warning: no-jdk' "$STARTUP_LOG" 2>/dev/null; then
    log "last 40 lines of $STARTUP_LOG:"
    grep -v '^warning: no-jdk' "$STARTUP_LOG" | tail -n 40 >&2
  fi
}

# Stop what this call launched, show why it failed (unless interrupted), exit 1.
abort_start() {
  trap - INT TERM
  if [[ -s $CONTAINER_FILE ]]; then
    if [[ $1 != interrupted ]]; then
      log "last 40 lines of the container's log:"
      docker logs --tail 40 "$(cat "$CONTAINER_FILE")" >&2 2>&1 || true
    fi
    docker rm -f "$(cat "$CONTAINER_FILE")" >/dev/null 2>&1 || true
    rm -f "$CONTAINER_FILE"
  else
    [[ $1 == interrupted ]] || show_zip_logs
    local pid
    if pid=$(find_node_pid); then kill_node "$pid"; fi
    rm -f "$PID_FILE"
  fi
  die "$1"
}

# The node just started reports every OPENSEARCH_SETTINGS setting, or the start is undone.
check_started_settings() {
  local missing
  ((${#SETTINGS[@]} > 0)) || return 0
  missing=$(settings_missing "$LOCAL_URL")
  [[ -z $missing ]] || abort_start "the node does not report OPENSEARCH_SETTINGS $missing in _nodes/settings"
}

# A node of ours already runs on this state dir: wait for it to be healthy and reuse it.
reuse_own_node() {
  local what=$1 alive=$2
  require_same_settings "$STATE_DIR"
  log "$what already running: reusing it"
  wait_healthy "$alive" || die "$what is running but not healthy; see scripts/opensearch.sh logs"
  mark reused
  echo "$LOCAL_URL"
  exit 0
}

# Prints the state dir of a node this script started on the port with any version or
# distribution, or fails. Run it in a subshell: it moves the state dir variables.
own_node_dir_on_port() {
  local dir
  for dir in "$WORK_DIR"/*-"$PORT"; do
    [[ -d $dir ]] || continue
    set_state_dir "$dir"
    if [[ -s $CONTAINER_FILE ]] || find_node_pid >/dev/null; then
      echo "$dir"
      return 0
    elif [[ -e $PID_FILE ]]; then
      rm -f "$PID_FILE" # stale
    fi
  done
  return 1
}

# Describes a node this script started on the port with any version or distribution, or fails.
own_node_on_port() {
  local dir pid settings
  dir=$(own_node_dir_on_port) || return 1
  set_state_dir "$dir"
  settings=$(recorded_settings "$dir")
  if [[ -s $CONTAINER_FILE ]]; then
    echo "${dir##*/}, container $(cut -c1-12 "$CONTAINER_FILE")${settings:+, settings: $settings}"
  else
    pid=$(find_node_pid) || pid="?"
    echo "${dir##*/}, pid $pid, RSS $(rss_of "$pid")${settings:+, settings: $settings}"
  fi
}

# No node of this state dir runs: reuse whatever healthy cluster answers on the port,
# or make sure the port is free.
check_port_free() {
  local owner dir
  if healthy "$LOCAL_URL"; then
    if dir=$(own_node_dir_on_port); then
      owner=$(own_node_on_port) || owner=${dir##*/}
      require_same_settings "$dir"
      log "a node this script started with another version or distribution ($owner) answers at $LOCAL_URL: reusing it"
    else
      require_settings_in_force "$LOCAL_URL"
      log "a healthy cluster not started by this script already answers at $LOCAL_URL" \
        "($(cluster_info "$LOCAL_URL" || echo unknown version)): reusing it; stop will leave it alone"
    fi
    mark reused
    echo "$LOCAL_URL"
    exit 0
  fi
  port_in_use "$PORT" &&
    die "port $PORT is in use by something that is not a healthy cluster; set OPENSEARCH_PORT to another port"
  return 0
}

# Never run against a real Docker engine (there was none where this was written): only
# exercised with a fake `docker` command that ran zip nodes.
start_docker() {
  if [[ -s $CONTAINER_FILE ]]; then
    docker_node_alive && reuse_own_node "container $(cut -c1-12 "$CONTAINER_FILE")" docker_node_alive
    log "removing stale container $(cut -c1-12 "$CONTAINER_FILE")"
    docker rm -f "$(cat "$CONTAINER_FILE")" >/dev/null 2>&1 || true
    rm -f "$CONTAINER_FILE"
  fi
  check_port_free
  mkdir -p "$STATE_DIR"
  docker rm -f "$CONTAINER_NAME" >/dev/null 2>&1 || true # a leftover of ours whose id file is gone
  log "starting $IMAGE:$VERSION as container $CONTAINER_NAME"
  local env_args=(-e discovery.type=single-node -e "cluster.name=$CLUSTER_NAME"
    -e cluster.routing.allocation.disk.threshold_enabled=false
    -e "${ENV_PREFIX}_JAVA_OPTS=-Xms$HEAP -Xmx$HEAP")
  local word
  # The images' entrypoints turn environment variables with dotted names into -E settings.
  for word in ${SETTINGS[@]+"${SETTINGS[@]}"}; do env_args+=(-e "$word"); done
  printf '%s\n' "$SETTINGS_TEXT" >"$SETTINGS_FILE"
  if [[ $DIST == opensearch ]]; then
    env_args+=(-e DISABLE_SECURITY_PLUGIN=true -e DISABLE_INSTALL_DEMO_CONFIG=true
      -e "OPENSEARCH_INITIAL_ADMIN_PASSWORD=$DOCKER_ADMIN_PASSWORD")
  fi
  local t0=$SECONDS
  docker run -d --name "$CONTAINER_NAME" -p "127.0.0.1:$PORT:9200" "${env_args[@]}" \
    "$IMAGE:$VERSION" >"$CONTAINER_FILE" 9>&- || {
    rm -f "$CONTAINER_FILE"
    die "docker run $IMAGE:$VERSION failed"
  }
  mark started
  trap 'abort_start interrupted' INT TERM
  wait_healthy docker_node_alive || abort_start "$IMAGE:$VERSION did not become healthy"
  check_started_settings
  trap - INT TERM
  log "$DIST $VERSION healthy at $LOCAL_URL after $((SECONDS - t0)) s (container $(cut -c1-12 "$CONTAINER_FILE"))"
  echo "$LOCAL_URL"
}

start_zip() {
  local pid
  if pid=$(find_node_pid); then
    reuse_own_node "$DIST $VERSION (pid $pid)" zip_node_alive
  fi
  if [[ -e $PID_FILE ]]; then
    log "removing stale pidfile $PID_FILE"
    rm -f "$PID_FILE"
  fi
  check_port_free
  port_in_use "$TRANSPORT_PORT" &&
    die "transport port $TRANSPORT_PORT is in use; set OPENSEARCH_TRANSPORT_PORT to a free port"

  local java_home
  java_home=$(choose_java)
  ensure_dist
  ensure_geo_module
  prepare_state_dir
  printf '%s\n' "$SETTINGS_TEXT" >"$SETTINGS_FILE"
  local extra=() word
  for word in ${SETTINGS[@]+"${SETTINGS[@]}"}; do extra+=(-E "$word"); done

  # OpenSearch (and Elasticsearch) refuse to run as root ("can not run opensearch as root"),
  # with no setting to allow it: as root, run the node as an unprivileged user owning its state dir.
  local as_user=()
  if (($(id -u) == 0)); then
    local user=${OPENSEARCH_RUN_AS:-nobody}
    if [[ $user == root ]] || ! id "$user" >/dev/null 2>&1; then
      die "OPENSEARCH_RUN_AS='$user' must be an existing user other than root"
    fi
    if command -v setpriv >/dev/null 2>&1; then
      as_user=(setpriv "--reuid=$user" "--regid=$(id -g "$user")" --init-groups)
    else
      as_user=(runuser -u "$user" --)
    fi
    chown -R "$user:$(id -g "$user")" "$STATE_DIR"
    "${as_user[@]}" test -x "$DIST_HOME/bin/$DIST" -a -w "$STATE_DIR" ||
      die "running as root, so the node runs as '$user', who cannot read $DIST_HOME or write $STATE_DIR: make the path world-readable or set OPENSEARCH_WORK_DIR (e.g. /tmp/cwl-opensearch)"
    log "running as root: the node runs as user '$user'"
  fi
  # Own session, so a Ctrl-C in the terminal does not reach the node (stop sends it TERM).
  local detach=()
  if command -v setsid >/dev/null 2>&1; then detach=(setsid -w); fi

  log "starting $DIST $VERSION on $LOCAL_URL (transport $TRANSPORT_PORT, heap $HEAP, Java $(java_major "$java_home"))"
  local t0=$SECONDS
  mark started
  trap 'abort_start interrupted' INT TERM
  (
    cd "$STATE_DIR"
    env JAVA_HOME="$java_home" "${ENV_PREFIX}_JAVA_HOME=$java_home" \
      "${ENV_PREFIX}_PATH_CONF=$CONF_DIR" "${ENV_PREFIX}_TMPDIR=$STATE_DIR/tmp" \
      "${ENV_PREFIX}_JAVA_OPTS=-Xms$HEAP -Xmx$HEAP" \
      ${detach[@]+"${detach[@]}"} ${as_user[@]+"${as_user[@]}"} "$DIST_HOME/bin/$DIST" -d -p "$PID_FILE" \
      -E discovery.type=single-node -E network.host=127.0.0.1 \
      -E "http.port=$PORT" -E "transport.port=$TRANSPORT_PORT" \
      -E "path.data=$STATE_DIR/data" -E "path.logs=$LOG_DIR" \
      -E "cluster.name=$CLUSTER_NAME" -E "node.name=$CLUSTER_NAME-$PORT" \
      -E cluster.routing.allocation.disk.threshold_enabled=false ${extra[@]+"${extra[@]}"} \
      </dev/null >>"$STARTUP_LOG" 2>&1 9>&- # 9: the lock, which the node must not inherit
  ) || abort_start "bin/$DIST exited with status $?"
  wait_healthy zip_node_alive || abort_start "$DIST $VERSION did not become healthy"
  check_started_settings
  trap - INT TERM
  pid=$(find_node_pid) || pid="?"
  log "$DIST $VERSION healthy at $LOCAL_URL after $((SECONDS - t0)) s (pid $pid, RSS $(rss_of "$pid"))${SETTINGS_TEXT:+, settings: $SETTINGS_TEXT}"
  echo "$LOCAL_URL"
}

use_docker() {
  case $DOCKER_MODE in
    never) return 1 ;;
    always)
      docker info >/dev/null 2>&1 || die "OPENSEARCH_DOCKER=always but 'docker info' fails (no Docker engine running?)"
      ;;
    auto) command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 ;;
    *) die "OPENSEARCH_DOCKER must be auto, never or always, not '$DOCKER_MODE'" ;;
  esac
}

# Serialise start/stop for one port (two concurrent starts must not launch two nodes).
lock() {
  mkdir -p "$WORK_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$WORK_DIR/.lock-$PORT"
    flock -w 300 9 || die "timed out waiting for another opensearch.sh on port $PORT"
  fi
}

cmd_start() {
  if [[ -n $EXTERNAL_URL ]]; then
    if healthy "$EXTERNAL_URL"; then
      require_settings_in_force "$EXTERNAL_URL"
      log "OPENSEARCH_URL: reusing the healthy cluster at $EXTERNAL_URL" \
        "($(cluster_info "$EXTERNAL_URL" || echo unknown version)); starting nothing"
      mark reused
      echo "$EXTERNAL_URL"
      return
    fi
    log "warning: OPENSEARCH_URL=$EXTERNAL_URL is set but no healthy cluster answers there: starting a local node"
  fi
  lock
  if use_docker; then start_docker; else start_zip; fi
}

# ---------------------------------------------------------------------------------------------
# stop, status, url, logs

# Stops every node this script started on the port, whatever version or distribution.
cmd_stop() {
  lock
  local dir pid stopped=false
  for dir in "$WORK_DIR"/*-"$PORT"; do
    [[ -d $dir ]] || continue
    set_state_dir "$dir"
    if [[ -s $CONTAINER_FILE ]]; then
      log "removing container $(cut -c1-12 "$CONTAINER_FILE")"
      docker rm -f "$(cat "$CONTAINER_FILE")" >/dev/null 2>&1 || log "container already gone"
      rm -f "$CONTAINER_FILE"
      stopped=true
    fi
    if pid=$(find_node_pid); then
      kill_node "$pid"
      stopped=true
    fi
    rm -f "$PID_FILE"
  done
  $stopped || log "nothing started by this script runs on port $PORT"
  if ! $stopped && healthy "$LOCAL_URL"; then
    log "(a cluster this script did not start answers at $LOCAL_URL: left alone)"
  fi
  return 0
}

# The URL start would hand out: OPENSEARCH_URL when a healthy cluster answers there, else local.
effective_url() {
  if [[ -n $EXTERNAL_URL ]] && healthy "$EXTERNAL_URL"; then
    echo "$EXTERNAL_URL"
  else
    echo "$LOCAL_URL"
  fi
}

cmd_status() {
  local url info owner=""
  url=$(effective_url)
  if [[ $url == "$LOCAL_URL" ]]; then owner=$(own_node_on_port) || owner=""; fi
  if healthy "$url"; then
    info=$(cluster_info "$url") || info="$DIST $VERSION"
    echo "running $info at $url"
    if [[ -n $owner ]]; then
      log "started by this script: $owner"
    else
      log "not started by this script: stop leaves it alone"
    fi
    return 0
  fi
  if [[ -n $owner ]]; then log "a node this script started is running but not healthy: $owner"; fi
  echo stopped
  return 3
}

cmd_logs() {
  local follow=()
  [[ ${1:-} == -f ]] && follow=(-f)
  if [[ -s $CONTAINER_FILE ]]; then
    exec docker logs --tail 100 ${follow[@]+"${follow[@]}"} "$(cat "$CONTAINER_FILE")"
  fi
  [[ -f $NODE_LOG ]] || die "no log at $NODE_LOG (has the node been started with these settings?)"
  if [[ ${#follow[@]} -gt 0 ]]; then exec tail -n 100 -F "$NODE_LOG"; fi
  tail -n 100 "$NODE_LOG"
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) effective_url ;;
  logs) cmd_logs "${2:-}" ;;
  *)
    echo "usage: $0 start|stop|status|url|logs [-f]   (see the header of this script)" >&2
    exit 2
    ;;
esac
