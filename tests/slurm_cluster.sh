#!/usr/bin/env bash
# A single-node SLURM cluster for the tests (tests/test_slurm.py), on this machine, as root,
# without systemd: munged, MariaDB + slurmdbd (submitit and the runner read job states with
# sacct, which needs accounting), slurmctld and slurmd for one node at 127.0.0.1.
#
#   tests/slurm_cluster.sh start DIR    # prints the SLURM_CONF to export, then the sinfo line
#   tests/slurm_cluster.sh stop DIR
#
# Everything it writes lives under DIR (configs, spool, logs, the database), except munge's
# key and socket, which slurm's auth/munge plugin looks for at their standard places
# (/etc/munge, /run/munge). Packages: Debian's slurm-wlm, munge, mariadb-server, slurmdbd.
# What it took on Debian bookworm (slurm 22.05): no cgroup.conf (`CgroupPlugin=disabled` is not
# in 22.05), proctrack/linuxproc (tracks a job's processes by parent, so the kernels that
# papermill starts in sessions of their own are signalled with their job), task/none, and
# select/cons_tres with CR_Core: one core per one-CPU job, so two jobs run at once on 2 cores.
set -euo pipefail
what=${1:?usage: slurm_cluster.sh start|stop DIR}
S=$(realpath -m "${2:?usage: slurm_cluster.sh start|stop DIR}")
export SLURM_CONF=$S/etc/slurm.conf

stop() {
    for p in slurmd slurmctld slurmdbd mariadb munged; do
        if [ -f "$S/$p.pid" ]; then
            kill "$(cat "$S/$p.pid")" 2>/dev/null || true
        fi
    done
    for _ in $(seq 20); do  # the next start reuses their ports
        alive=0
        for p in slurmd slurmctld slurmdbd mariadb munged; do
            [ -f "$S/$p.pid" ] && kill -0 "$(cat "$S/$p.pid")" 2>/dev/null && alive=1
        done
        [ $alive = 0 ] && break
        sleep 0.5
    done
    rm -f "$S"/*.pid
}

if [ "$what" = stop ]; then stop; exit 0; fi
[ "$what" = start ] || { echo "slurm_cluster.sh: expected start or stop, got $what" >&2; exit 2; }
stop
mkdir -p "$S/etc" "$S/spool/ctld" "$S/spool/d" "$S/log" "$S/db" /run/mysqld \
    /run/munge /var/log/munge /var/lib/munge /etc/munge

# munge: one key for the node (kept if there is one), munged as the munge user
id munge >/dev/null 2>&1 || useradd -r -s /usr/sbin/nologin munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
if ! pgrep -x munged >/dev/null; then
    su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid"
    cp /run/munge/munged.pid "$S/munged.pid"
fi

host=$(hostname -s)
cat >"$S/etc/slurm.conf" <<EOF
ClusterName=srlibtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$S/spool/ctld
SlurmdSpoolDir=$S/spool/d
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
KillWait=30
$(slurmd -C | head -n 1) NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

# MariaDB (its pid file cannot go under a root-owned folder: /run/mysqld) and slurmdbd
chown mysql:mysql "$S/db" /run/mysqld
[ -d "$S/db/mysql" ] || mariadb-install-db --user=mysql --datadir="$S/db" >"$S/log/db-install.log" 2>&1
mariadbd --user=mysql --datadir="$S/db" --socket=/run/mysqld/mysqld.sock \
    --pid-file=/run/mysqld/srlib-test.pid --bind-address=127.0.0.1 >"$S/log/mariadb.log" 2>&1 &
echo $! >"$S/mariadb.pid"
for _ in $(seq 60); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.5; done
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
cat >"$S/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$S/log/slurmdbd.log
PidFile=$S/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
chmod 600 "$S/etc/slurmdbd.conf"
/usr/sbin/slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF
for _ in $(seq 40); do timeout 5 sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
timeout 10 sacctmgr -i add cluster srlibtest >/dev/null 2>&1 || true

/usr/sbin/slurmctld -c   # -c: a clean start, no jobs of an earlier cluster
/usr/sbin/slurmd
for _ in $(seq 60); do timeout 5 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed)' && break; sleep 0.5; done
echo "SLURM_CONF=$SLURM_CONF"
sinfo -h -o "%P %D %T %c"
