# Shared by the service installers (source it): install Debian packages idempotently.
#
#   source scripts/services/apt.sh
#   ensure_packages NAME pkg...     # NAME prefixes the messages
#
# Non-interactive; refreshes the package lists only when apt knows no candidate yet (fresh
# image); waits for a dpkg lock another installer holds; a package's postinst may not
# start its default server (policy-rc.d), since the tests start their own.

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=600 -q)

ensure_packages() {
    local name=$1
    shift
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "$name: must run as root (apt-get install)" >&2
        return 1
    fi
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        echo "$name: $* already installed"
        return 0
    fi
    if apt-cache policy "${missing[@]}" 2>/dev/null | grep -q "Candidate: (none)" \
        || [[ -z "$(apt-cache policy "${missing[@]}" 2>/dev/null)" ]]; then
        apt-get "${APT_OPTS[@]}" update
    fi
    echo "$name: installing ${missing[*]}"
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created=1
    fi
    local rc=0
    apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}" || rc=$?
    if ((created)); then
        rm -f "$policy"
    fi
    return "$rc"
}
