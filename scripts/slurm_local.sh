#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, on loopback only, for CI and for trying profiles/slurm locally.
#
#   scripts/slurm_local.sh up       install slurmctld/slurmd/slurm-client/munge if missing (apt), start munged,
#                                   slurmctld and slurmd; two partitions on the one node: `cpu` (default) and `gpu`
#                                   (the node advertises two fake GPUs, gres gpu:2 backed by /dev/null and /dev/zero)
#   scripts/slurm_local.sh down     cancel leftover jobs, stop only the daemons this script started (pidfiles)
#   scripts/slurm_local.sh status   daemons, sinfo, squeue
#
# Needs root (Debian/Ubuntu: apt-get). State, logs and pidfiles live in $MEDBRIDGE_SLURM_DIR
# (default /tmp/medbridge-slurm); /etc/slurm/slurm.conf becomes a symlink to the config there because the executor
# plugin's job step clears SLURM_CONF and must find the config at the default path. An existing /etc/slurm/slurm.conf
# that is not ours is never touched: `up` refuses instead.
# Without accounting (no slurmdbd) sacct cannot report job states: run Snakemake with `--slurm-status-command squeue`;
# MinJobAge=600 keeps finished jobs visible to squeue/scontrol long enough for the plugin's status checks.
set -euo pipefail

STATE="${MEDBRIDGE_SLURM_DIR:-/tmp/medbridge-slurm}"
CONF="$STATE/slurm.conf"
ETC_CONF=/etc/slurm/slurm.conf
HOST="$(hostname -s)"
PACKAGES=(slurmctld slurmd slurm-client munge)
DAEMONS=(slurmd slurmctld munged)  # stop order: compute daemon, controller, then the auth daemon they both use

log() { echo "slurm_local: $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_of() {  # the PID in a daemon's pidfile, only if that process is alive and is that daemon
    local name=$1 file="$STATE/$1.pid" pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid && -r /proc/$pid/comm ]] || return 1
    [[ $(cat "/proc/$pid/comm") == "$name" ]] || return 1
    echo "$pid"
}

install_packages() {
    local missing=()
    for cmd in slurmctld slurmd sbatch munged; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ $EUID -eq 0 ]] || die "missing ${missing[*]} and not root: install ${PACKAGES[*]} or rerun as root"
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get: install ${PACKAGES[*]} yourself"
    log "installing ${PACKAGES[*]} (apt-get)"
    # Keep the packages' maintainer scripts from starting daemons of their own (they would not be ours to stop).
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
    if ((rc == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null ||
            rc=$?
    fi
    if ((made_policy)); then rm -f "$policy"; fi
    ((rc == 0)) || die "apt-get failed (exit $rc); install ${PACKAGES[*]} by hand"
}

write_config() {
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
    mkdir -p "$STATE"/{state,spool,munge-key,munge-run,munge-lib}
    chmod 700 "$STATE/munge-key"  # munged refuses a key directory others can read
    chmod 755 "$STATE/munge-run"  # and a socket directory clients cannot reach ("Socket is inaccessible")
    cat >"$CONF" <<EOF
# Written by scripts/slurm_local.sh: a one-node cluster on loopback. Not for production.
ClusterName=medbridge-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge-run/munge.socket
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# no cgroups here (containers, no systemd): Linux process tracking, affinity only
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
# a job without --mem must not take the whole node; an impossible request must fail at submit, not wait forever
DefMemPerCPU=512
EnforcePartLimits=ALL
# finished jobs stay visible to squeue/scontrol for 10 min (the plugin's squeue status check relies on it)
MinJobAge=600
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST Default=NO MaxTime=INFINITE State=UP
EOF
    # two fake GPUs: schedulable, set CUDA_VISIBLE_DEVICES (0, or 0,1) in jobs, no device behind them (a multi-GPU
    # job, e.g. 2-process training, can be tried); slurmd reads gres.conf from the directory of its slurm.conf
    cat >"$STATE/gres.conf" <<EOF
AutoDetect=off
NodeName=$HOST Name=gpu File=/dev/null
NodeName=$HOST Name=gpu File=/dev/zero
EOF
    mkdir -p /etc/slurm
    if [[ -e $ETC_CONF || -L $ETC_CONF ]]; then
        [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$CONF" ]] ||
            die "$ETC_CONF exists and is not this script's; refusing to replace a real SLURM config"
    else
        ln -s "$CONF" "$ETC_CONF"
    fi
}

start_munge() {
    pid_of munged >/dev/null && return 0
    local key="$STATE/munge-key/munge.key"
    if [[ ! -s $key ]]; then
        dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
        chmod 400 "$key"
    fi
    munged --key-file="$key" --socket="$STATE/munge-run/munge.socket" --pid-file="$STATE/munged.pid" \
        --log-file="$STATE/munged.log" --seed-file="$STATE/munge-lib/munged.seed" --force
    wait_for "munged" 20 munge -n -S "$STATE/munge-run/munge.socket" >/dev/null
}

wait_for() {  # wait_for WHAT SECONDS CMD...: rerun CMD until it succeeds
    local what=$1 secs=$2
    shift 2
    for ((i = 0; i < secs * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "$what did not come up within ${secs}s; see the logs in $STATE"
}

node_idle() { sinfo -h -n "$HOST" -o '%t' 2>/dev/null | grep -q -E '^(idle|mix|alloc)'; }

up() {
    [[ $EUID -eq 0 ]] || die "run as root (daemons run as root on this single-node test cluster)"
    install_packages
    write_config
    start_munge
    if ! pid_of slurmctld >/dev/null; then
        slurmctld -f "$CONF" -c  # -c: clear saved state: a fresh cluster every time
    fi
    wait_for "slurmctld" 30 scontrol ping
    if ! pid_of slurmd >/dev/null; then
        slurmd -f "$CONF"
    fi
    for ((i = 0; i < 60; i++)); do
        node_idle && break
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        sleep 0.5
    done
    node_idle || die "node $HOST is not idle: $(sinfo -h -n "$HOST" -o '%t %E'); see $STATE/slurmd.log"
    log "up: node $HOST idle, partitions: $(sinfo -h -o '%P' | tr '\n' ' ')(config $CONF)"
}

down() {
    if pid_of slurmctld >/dev/null; then
        local jobs
        jobs=$(squeue -h -o '%i' 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            log "cancelling leftover jobs: $(echo "$jobs" | tr '\n' ' ')"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 20; i++)); do
                [[ -z $(squeue -h -t PD,R,CG -o '%i' 2>/dev/null) ]] && break
                sleep 0.5
            done
        fi
    fi
    local name pid
    for name in "${DAEMONS[@]}"; do
        pid=$(pid_of "$name") || continue
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do
            [[ -d /proc/$pid ]] || break
            sleep 0.5
        done
        if [[ -d /proc/$pid ]]; then
            log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$STATE/$name.pid"
    done
    # remove the link only if it is ours
    if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$CONF" ]]; then rm -f "$ETC_CONF"; fi
    log "down"
}

status() {
    local name pid running=0
    for name in munged slurmctld slurmd; do
        if pid=$(pid_of "$name"); then
            echo "$name: running (pid $pid)"
            running=$((running + 1))
        else
            echo "$name: not running"
        fi
    done
    if ((running == 3)); then
        sinfo
        squeue
        return 0
    fi
    return 1
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*)
    echo "usage: $0 {up|down|status}" >&2
    exit 2
    ;;
esac
