# Sourced by the scripts that scripts/run-tests runs as its stages.
#
# cannot_run WHO WHY...: the stage lacks something this machine should
# have (root, a tool, the shared folder, a working podman).  Outside CI it
# is skipped, saying why (exit 0); with CI=true it fails, saying why
# (exit 1): CI never passes by skipping what it was meant to prove.
# (The tests of t/ do the same through WebhookTest's cannot_run.)
cannot_run() {
    local who=$1
    shift
    if [ "${CI:-}" = true ]; then
        echo "$who: CI=true, and this stage cannot run: $*" >&2
        exit 1
    fi
    echo "$who: skipped: $*" >&2
    exit 0
}
