# Shell helpers for the suite's control scripts (sourced: . /usr/libexec/qga-test/lib.sh).

# Direct children of a pid, from /proc/*/stat (field 4 is the parent pid).
children_of() {
    for stat in /proc/[0-9]*/stat; do
        read -r pid _comm _state ppid _rest 2>/dev/null < "$stat" || continue
        [ "$ppid" = "$1" ] && echo "$pid"
    done
}

# A pid and all its descendants.
process_tree() {
    echo "$1"
    for child in $(children_of "$1"); do
        process_tree "$child"
    done
}

# Kill a process tree as a crash would: stop every process first so none can run a
# clean-up path (e.g. a helper thawing when its front goes away), then SIGKILL them all.
crash_tree() {
    tree=$(process_tree "$1")
    for pid in $tree; do kill -STOP "$pid" 2>/dev/null; done
    for pid in $tree; do kill -KILL "$pid" 2>/dev/null; done
    for pid in $tree; do kill -CONT "$pid" 2>/dev/null; done
    echo "$tree"
}

# Pids whose executable is named $1.
pids_by_exe() {
    for exe in /proc/[0-9]*/exe; do
        target=$(readlink "$exe" 2>/dev/null) || continue
        [ "${target##*/}" = "$1" ] || continue
        pid=${exe#/proc/}
        echo "${pid%/exe}"
    done
}

agent_pid() { cat /run/qga-test/agent.pid; }
