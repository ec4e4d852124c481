#!/usr/bin/env bash
# A one-node SLURM cluster on the local host, for the tests of `mae-transfer grid --executor slurm` (CI calls it
# before `make test`). Debian's slurm-wlm and munge packages; one node with the host's CPUs and memory as
# `slurmd -C` reports them, one partition, cons_tres selection by CPU (so that several 1-CPU jobs run side by
# side), no accounting. Needs root. A second call on a running cluster does nothing.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by mae-transfer scripts/slurm_local.sh"

if [[ $(id -u) -ne 0 ]]; then
    echo "slurm_local.sh: needs root (installs packages, starts munged, slurmctld and slurmd)" >&2
    exit 1
fi

node_idle() { sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }

if [[ -f $CONF ]] && grep -qF "$MARK" "$CONF" && pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null \
        && node_idle; then
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: a key readable only by its daemon's user, then the daemon
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    echo "slurm_local.sh: $CONF exists and was not written by this script; leaving the host's SLURM alone" >&2
    exit 1
fi
host=$(hostname -s)
node=$(slurmd -C | head -1)  # NodeName=HOST CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=.. RealMemory=..
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$CONF" <<EOF
$MARK
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
KillWait=10
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
scontrol reconfigure >/dev/null 2>&1 || true

for _ in $(seq 60); do
    if node_idle; then
        exit 0
    fi
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "slurm_local.sh: node $host did not become idle in 60 s:" >&2
sinfo -N -l >&2 || true
tail -5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
