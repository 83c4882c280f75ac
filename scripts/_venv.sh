# shellcheck shell=bash
# Sourced (not run) by scripts/test and scripts/demo, from the repository root.
# Creates .venv with python3 if it is missing or broken, and (re)installs the
# project into it with the dev, testing, flask, rollbar, metrics, otel and dashboard extras whenever pyproject.toml is newer
# than the stamp file .venv/.installed.

typedtiger_ensure_venv() {
    # Two runs side by side (scripts/test twice) must not create or install .venv at once.
    if ! command -v flock >/dev/null 2>&1; then
        _typedtiger_ensure_venv_unlocked
        return
    fi
    local lock_fd rc=0
    exec {lock_fd}>.venv.lock
    flock "$lock_fd"
    _typedtiger_ensure_venv_unlocked || rc=$?
    exec {lock_fd}>&-
    return "$rc"
}

_typedtiger_ensure_venv_unlocked() {
    local venv=.venv
    local stamp="$venv/.installed"

    if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        if ! command -v python3 >/dev/null 2>&1; then
            echo "error: python3 (3.11 or newer) is needed to create .venv, and none is on PATH" >&2
            return 1
        fi
        if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "error: typedtiger needs Python 3.11 or newer; python3 is $(python3 -V 2>&1)" >&2
            return 1
        fi
        echo "==> creating .venv with $(python3 -V 2>&1)"
        rm -rf "$venv"
        python3 -m venv "$venv" || return 1
    fi

    if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
        echo "==> installing typedtiger[dev,testing,flask,rollbar,metrics,otel,dashboard] into .venv (editable)"
        rm -f "$stamp"
        "$venv/bin/python" -m pip install -q -e '.[dev,testing,flask,rollbar,metrics,otel,dashboard]' || return 1
        touch "$stamp"
    fi
}
