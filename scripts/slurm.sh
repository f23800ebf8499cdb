#!/usr/bin/env bash
# A single-node Slurm cluster on this machine (Debian's munge, slurmctld, slurmd, slurm-client), for
# running the plugin's CalcJobs through a real batch scheduler. Idempotent; needs root (or sudo); no
# systemd: the daemons are started directly.
#   bash scripts/slurm.sh           # install if needed, configure, start, wait until the node is idle
#                                   # (partitions: debug, the default, and short with a 10 minute limit)
#   bash scripts/slurm.sh status    # sinfo + squeue
#   bash scripts/slurm.sh stop      # stop slurmd, slurmctld and munged
# Environment: SLURM_PARTITION (default debug), SLURM_MAX_TIME (partition limit, default INFINITE).
set -euo pipefail
# shellcheck source=scripts/_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
CONF=/etc/slurm/slurm.conf
PARTITION="${SLURM_PARTITION:-debug}"
MAX_TIME="${SLURM_MAX_TIME:-INFINITE}"

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_all() {
  step "stopping Slurm and munge"
  for daemon in slurmd slurmctld; do
    if pid_alive "/run/$daemon.pid"; then
      $SUDO kill "$(cat "/run/$daemon.pid")" && echo "stopped $daemon"
    else
      echo "$daemon was not running"
    fi
  done
  if pid_alive /run/munge/munged.pid; then
    $SUDO kill "$(cat /run/munge/munged.pid)" && echo "stopped munged"
  else
    echo "munged was not running"
  fi
}

case "${1:-start}" in
  stop) stop_all; exit 0 ;;
  status) sinfo; squeue; exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|status|stop]" >&2; exit 2 ;;
esac

step "packages (Debian: munge slurmctld slurmd slurm-client)"
missing=()
for package in munge slurmctld slurmd slurm-client; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # wait for another apt/dpkg run (up to 10 min) instead of failing on its lock
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
  echo "installed ${missing[*]}"
else
  echo "already installed"
fi

step "munge (authentication between the Slurm daemons)"
if [ ! -s /etc/munge/munge.key ]; then
  $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  echo "created /etc/munge/munge.key"
fi
$SUDO chown munge:munge /etc/munge/munge.key
$SUDO chmod 0400 /etc/munge/munge.key
$SUDO mkdir -p /run/munge && $SUDO chown munge:munge /run/munge
if pid_alive /run/munge/munged.pid && munge -n >/dev/null 2>&1; then
  echo "munged is running"
else
  $SUDO runuser -u munge -- /usr/sbin/munged
  echo "started munged"
fi

step "slurm.conf (single node $(hostname -s), partition $PARTITION, MaxTime=$MAX_TIME)"
NODE_LINE="$(slurmd -C | head -n 1) State=UNKNOWN"
$SUDO mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
NEW_CONF="$(mktemp)"
cat >"$NEW_CONF" <<EOF
# written by aiida-mofmlp scripts/slurm.sh: a single-node cluster for this machine
ClusterName=mofmlp
SlurmctldHost=$(hostname -s)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MailProg=/bin/true
# a job over its time limit gets SIGTERM, then SIGKILL after KillWait seconds
KillWait=5
# refuse at sbatch time a job beyond its partition's limits (instead of leaving it pending forever)
EnforcePartLimits=ALL
MinJobAge=300
$NODE_LINE
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=$MAX_TIME State=UP
# a partition with a 10 minute limit, as clusters have, to try what a refused walltime does
PartitionName=short Nodes=ALL MaxTime=00:10:00 State=UP
EOF
if ! $SUDO cmp -s "$NEW_CONF" "$CONF"; then
  $SUDO cp "$NEW_CONF" "$CONF"
  echo "wrote $CONF"
  CHANGED=1
else
  echo "$CONF unchanged"
  CHANGED=0
fi
rm -f "$NEW_CONF"

step "slurmctld and slurmd"
if pid_alive /run/slurmctld.pid; then
  if [ "$CHANGED" = 1 ]; then $SUDO scontrol reconfigure && echo "slurmctld reconfigured"; fi
  echo "slurmctld is running"
else
  $SUDO /usr/sbin/slurmctld -i
  echo "started slurmctld"
fi
if pid_alive /run/slurmd.pid; then
  echo "slurmd is running"
else
  $SUDO /usr/sbin/slurmd
  echo "started slurmd"
fi

step "waiting for the node to accept jobs"
for _ in $(seq 1 60); do
  state="$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)"
  case "$state" in
    idle*|mixed*|allocated*|completing*)
      echo "node $(hostname -s): $state"
      sinfo
      exit 0
      ;;
    down*|drain*)
      $SUDO scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
      ;;
  esac
  sleep 1
done
echo "Slurm did not report an idle node within 60 s; see /var/log/slurm/" >&2
exit 1
