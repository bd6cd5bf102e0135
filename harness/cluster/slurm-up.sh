#!/usr/bin/env bash
# A single-node SLURM cluster on this host, for the SLURM runner's tests and for trying `RUNNER=slurm`
# on a laptop: Debian's slurm-wlm (slurmctld, slurmd), munge, and accounting through slurmdbd and
# MariaDB (submitit and `python -m harness status` read job states with sacct, so accounting is real).
#
#   harness/cluster/slurm-up.sh [up]   install what is missing, write the configs, start the daemons,
#                                      wait until sinfo and sacct answer (idempotent: a running
#                                      cluster is left as it is)
#   harness/cluster/slurm-up.sh down   stop the daemons this script started
#   harness/cluster/slurm-up.sh env    print the line that points SLURM's commands at this cluster
#
# Everything lives in a state folder ($FER_SLURM_STATE, default .cache/slurm): slurm.conf,
# slurmdbd.conf, the MariaDB data, spool and state directories, logs and pid files. /etc is not
# touched, so SLURM's commands find the cluster through SLURM_CONF (the Makefile sets it when the
# folder exists). No systemd: each daemon is started by hand in the foreground mode (-D) and
# backgrounded here. Run it as root: it installs packages (apt-get), and slurmd starts jobs as their users
# (the daemons run as the calling user).
set -euo pipefail
cd "$(dirname "$0")/../.."

STATE=$(mkdir -p "${FER_SLURM_STATE:-.cache/slurm}" && cd "${FER_SLURM_STATE:-.cache/slurm}" && pwd)
ETC=$STATE/etc LOG=$STATE/log RUN=$STATE/run
DB_PORT=${FER_SLURM_DB_PORT:-3307}    # MariaDB, TCP on 127.0.0.1 only (not the default 3306)
NODE=$(hostname -s)
USER_NAME=$(id -un)
export SLURM_CONF=$ETC/slurm.conf

say() { echo "slurm-up: $*"; }
fail() { echo "slurm-up: error: $*" >&2; exit 1; }
alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurm-wlm)
    command -v slurmdbd >/dev/null || missing+=(slurmdbd)
    command -v munged >/dev/null || missing+=(munge)
    command -v mariadbd >/dev/null || missing+=(mariadb-server)
    [ ${#missing[@]} -eq 0 ] && return
    [ "$(id -u)" -eq 0 ] || fail "missing ${missing[*]}; install them (sudo apt-get install ${missing[*]}) or run this as root"
    say "installing ${missing[*]} (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_configs() {
    mkdir -p "$ETC" "$LOG" "$RUN" "$STATE/ctld" "$STATE/spool"
    local cpus mem
    # The accounting database's password: made once, readable by this user only (as slurmdbd.conf).
    [ -f "$ETC/db.pass" ] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$ETC/db.pass")
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    # cons_tres with CR_CPU: one CPU per task, so two tasks of a job array run side by side on 2 cores.
    # proctrack/linuxproc and task/none: no cgroups needed (containers, laptops). cred_expire: a
    # requeued job may start again after this many seconds (SLURM's default, 120 s, is dead time here).
    cat > "$ETC/slurm.conf.new" <<EOF
# Written by harness/cluster/slurm-up.sh for $NODE: a single-node test cluster.
ClusterName=fer
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
SlurmctldPort=${FER_SLURM_CTLD_PORT:-6817}
SlurmdPort=${FER_SLURM_D_PORT:-6818}
AuthType=auth/munge
AuthInfo=cred_expire=10
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=300
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=${FER_SLURM_DBD_PORT:-6819}
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    cat > "$ETC/slurmdbd.conf.new" <<EOF
# Written by harness/cluster/slurm-up.sh: accounting for the single-node test cluster.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=${FER_SLURM_DBD_PORT:-6819}
SlurmUser=$USER_NAME
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=fer_slurm
StoragePass=$(cat "$ETC/db.pass")
StorageLoc=slurm_acct_db
EOF
    # Only replace a config that changed: a running daemon keeps reading the file it started with.
    for f in slurm.conf slurmdbd.conf; do
        if cmp -s "$ETC/$f.new" "$ETC/$f"; then rm "$ETC/$f.new"; else mv "$ETC/$f.new" "$ETC/$f"; fi
    done
    chmod 600 "$ETC/slurmdbd.conf"  # slurmdbd refuses a config others can read
}

start_munge() {
    # munge's default socket and key (/run/munge, /etc/munge/munge.key from the package): SLURM's
    # commands look there, and a host that already runs munged (a laptop with the service) is reused.
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
    say "starting munged"
    mkdir -p /run/munge
    munged --force --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
        || fail "munged did not start; see $LOG/munged.log"
}

start_mariadb() {
    alive mariadb && return
    if [ ! -d "$STATE/mysql/mysql" ]; then
        say "creating the accounting database in $STATE/mysql"
        mariadb-install-db --user="$USER_NAME" --datadir="$STATE/mysql" --auth-root-authentication-method=socket \
            --skip-test-db >"$LOG/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed; see $LOG/mariadb-install.log"
    fi
    say "starting mariadbd on 127.0.0.1:$DB_PORT"
    nohup mariadbd --no-defaults --user="$USER_NAME" --datadir="$STATE/mysql" --socket="$RUN/mysql.sock" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --pid-file="$RUN/mariadb.pid" \
        --log-error="$LOG/mariadb.log" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
    for _ in $(seq 60); do
        mariadb --no-defaults --socket="$RUN/mysql.sock" -e "select 1" >/dev/null 2>&1 && break
        sleep 1
    done
    mariadb --no-defaults --socket="$RUN/mysql.sock" -e "select 1" >/dev/null 2>&1 \
        || fail "mariadbd did not start; see $LOG/mariadb.log"
    # slurmdbd connects over TCP (127.0.0.1 only) as its own database user, with the password above.
    local pass
    pass=$(cat "$ETC/db.pass")
    mariadb --no-defaults --socket="$RUN/mysql.sock" -e "
        CREATE USER IF NOT EXISTS 'fer_slurm'@'localhost' IDENTIFIED BY '$pass';
        CREATE USER IF NOT EXISTS 'fer_slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
        GRANT ALL ON slurm_acct_db.* TO 'fer_slurm'@'localhost';
        GRANT ALL ON slurm_acct_db.* TO 'fer_slurm'@'127.0.0.1';"
}

start_daemon() {  # name, command...
    local name=$1; shift
    alive "$name" && return
    say "starting $name"
    nohup "$@" >>"$LOG/$name.out" 2>&1 &
    echo $! >"$RUN/$name.pid"
}

wait_for() {  # what, seconds, command...
    local what=$1 secs=$2; shift 2
    for _ in $(seq "$secs"); do
        "$@" >/dev/null 2>&1 && return
        sleep 1
    done
    fail "$what did not answer within ${secs}s; logs in $LOG"
}

up() {
    install_packages
    write_configs
    start_munge
    start_mariadb
    start_daemon slurmdbd slurmdbd -D  # reads slurmdbd.conf beside $SLURM_CONF
    wait_for "slurmdbd" 60 sacctmgr -n list cluster
    # The cluster must be known to the accounting database before slurmctld registers with it.
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx fer; then
        sacctmgr -i add cluster fer >/dev/null
    fi
    start_daemon slurmctld slurmctld -D -i -f "$ETC/slurm.conf"
    start_daemon slurmd slurmd -D -f "$ETC/slurm.conf"
    wait_for "slurmctld" 60 scontrol ping
    # A node left DOWN by an earlier, killed slurmd is put back to work.
    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    wait_for "the node" 60 bash -c "sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)'"
    wait_for "sacct" 60 sacct -n -X -S now
    say "cluster up: $(sinfo -h -o '%P %D node(s) %C cpus (alloc/idle/other/total) %T')"
    say "SLURM_CONF=$SLURM_CONF (the Makefile sets it; in a shell: eval \"\$(harness/cluster/slurm-up.sh env)\")"
}

down() {
    for name in slurmd slurmctld slurmdbd mariadb munged; do
        if alive "$name"; then
            say "stopping $name"
            kill "$(cat "$RUN/$name.pid")"
        fi
    done
}

case "${1:-up}" in
    up) up ;;
    down) down ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) fail "unknown command '$1'; valid: up, down, env" ;;
esac
