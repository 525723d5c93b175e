# Runs as root inside the User-Mode Linux guest (see init.sh); tests/test_cgroup_v2_guest.py reads the results.
#
# $hb_out/env sets PHASE (root or user: one guest per phase, booted at once by tests/support/guest.py), PYTHON
# (the host's interpreter), REPO (this checkout), TESTS (test files), SELECTION (a -k expression), DESELECT (a
# test id not to run) and EXPOSE (directories under a private parent, e.g. /root/.pyenv, that the unprivileged
# user must reach). The phase runs its selection with CI=true (a skip is a failure, see tests/conftest.py),
# writes PHASE.xml (JUnit) and PHASE-left.txt (the groups left behind afterwards):
#   root: as root, in a group of its own below the root group;
#   user: as uid 1000 in a subtree delegated the way `systemd-run --user --scope -p Delegate=yes` does
#         (its directory and cgroup.procs, cgroup.subtree_control, cgroup.threads chowned to the user);
#         then undelegated.txt: what uid 1000 is told in a group that is not delegated to it.
set -u
. "$hb_out/env"
CG=/sys/fs/cgroup
USER_ID=1000
AS_USER="setpriv --reuid=$USER_ID --regid=$USER_ID --clear-groups"
mount -t tmpfs -o mode=0755 tmpfs /mnt  # guest-only scratch space (fast, unlike hostfs)
mount -t tmpfs -o mode=1777 tmpfs /var/tmp  # hostfs keeps the host's owner on every file: uid 1000 could not write
echo "+memory +cpu +pids" >$CG/cgroup.subtree_control

run_tests() {  # PHASE DESELECT [PREFIX]: TESTS -k SELECTION with a fresh TMPDIR; then the groups left
    phase=$1 deselect=$2
    shift 2
    mkdir /mnt/$phase && chown "${OWNER:-0}" /mnt/$phase
    (cd "$REPO" && CI=true TMPDIR=/mnt/$phase HOME=/mnt/$phase PYTHONPATH="$REPO" \
        "$@" "$PYTHON" -m pytest -p no:cacheprovider -q -rA --junitxml=/mnt/$phase/junit.xml -k "$SELECTION" --deselect "$deselect" $TESTS)
    echo "phase $phase: pytest exit $?"
    cp /mnt/$phase/junit.xml "$hb_out/$phase.xml"
    find $CG -mindepth 1 -type d | grep -v -x -e $CG/root-session -e $CG/delegated -e $CG/harnessbench \
        >"$hb_out/$phase-left.txt"
}

expose() {  # guest-only mounts: each private PARENT/CHILD in EXPOSE becomes reachable, PARENT shows only CHILD
    for path in $EXPOSE; do
        parent=${path%/*} hidden=/mnt/hidden${path%/*}
        if [ ! -d "$hidden" ]; then
            mkdir -p "$hidden" && mount --bind "$parent" "$hidden" && mount -t tmpfs -o mode=0755 tmpfs "$parent"
        fi
        mkdir -p "$path" && mount --bind "$hidden/${path##*/}" "$path"
    done
}

case $PHASE in
root)
    mkdir $CG/root-session
    (echo 0 >$CG/root-session/cgroup.procs && run_tests root "$DESELECT")
    ;;
user)
    expose
    mkdir $CG/delegated
    chown $USER_ID:$USER_ID $CG/delegated $CG/delegated/cgroup.procs $CG/delegated/cgroup.subtree_control \
        $CG/delegated/cgroup.threads
    (echo 0 >$CG/delegated/cgroup.procs && OWNER=$USER_ID run_tests user "$DESELECT" $AS_USER)
    cd "$REPO" && PYTHONPATH="$REPO" $AS_USER "$PYTHON" -c \
        'from pytest_harnessbench.sandbox import cgroups; cgroups.detect()' >"$hb_out/undelegated.txt" 2>&1
    echo "undelegated: exit $?"
    ;;
*)
    echo "unknown PHASE=$PHASE" >&2
    exit 2
    ;;
esac
