#!/usr/bin/env bash
# Runs a command in a private network namespace whose loopback is silent where the Internet
# is: every packet to the dark nets is dropped, except to the live addresses.
#
#   benches/dark/netns.sh --dark NET [--dark NET]... [--live FILE]... -- COMMAND [ARG]...
#
# NET is an IPv4 prefix inside 127.0.0.0/8 (e.g. 127.48.0.0/16). FILE is a test-bed truth
# file (JSON lines with "ip") or one IPv4 address per line; benches/dark/live.sh FILE adds
# more from inside. 127.0.0.1 (the scanner's source address) always stays live.
#
# The namespace (`unshare --net`, with only its own `lo`) and its nftables table exist only
# while COMMAND runs: nothing outside is touched, no interface, route or firewall of the
# machine. As root it needs nothing more; otherwise a user namespace maps the caller to root
# inside (`unshare --map-root-user`). Needs `unshare` (util-linux), `ip` (iproute2) and `nft`
# (nftables).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

if [ -z "${SURVEYOR_DARK_NETNS:-}" ]; then
    for tool in unshare ip nft; do
        if ! command -v "$tool" >/dev/null; then
            echo "netns.sh: $tool is missing (Debian: apt-get install util-linux iproute2 nftables)" >&2
            exit 127
        fi
    done
    flags=(--net)
    [ "$(id -u)" -eq 0 ] || flags=(--map-root-user --net)
    SURVEYOR_DARK_NETNS=1 exec unshare "${flags[@]}" -- "$0" "$@"
fi
# Inside the namespace from here on; the command must not think it is inside twice.
unset SURVEYOR_DARK_NETNS

dark=()
live=()
while [ $# -gt 0 ]; do
    case "$1" in
    --dark) dark+=("$2"); shift 2 ;;
    --dark=*) dark+=("${1#--dark=}"); shift ;;
    --live) live+=("$2"); shift 2 ;;
    --live=*) live+=("${1#--live=}"); shift ;;
    --) shift; break ;;
    *) usage ;;
    esac
done
[ ${#dark[@]} -gt 0 ] && [ $# -gt 0 ] || usage
for net in "${dark[@]}"; do
    case "$net" in
    127.*) ;;
    *) echo "netns.sh: $net is not inside 127.0.0.0/8" >&2; exit 2 ;;
    esac
done

ip link set lo up
# SYN discovery sends frames on lo (AF_PACKET); lo takes frames from 127/8 to 127/8 only with
# these two, set in this namespace alone.
echo 1 >/proc/sys/net/ipv4/conf/lo/accept_local
echo 1 >/proc/sys/net/ipv4/conf/lo/route_localnet
# The input hook sees every packet delivered on lo, the SYNs to dark addresses among them:
# dropped there, a connect() waits for its timeout and no reset comes back.
joined=$(IFS=,; echo "${dark[*]}")
nft -f - <<NFT
table inet surveyor_dark {
    set live {
        type ipv4_addr
        elements = { 127.0.0.1 }
    }
    set dark {
        type ipv4_addr
        flags interval
        auto-merge
        elements = { $joined }
    }
    chain input {
        type filter hook input priority 0; policy accept;
        ip daddr @live accept
        ip daddr @dark drop
    }
}
NFT
for file in ${live[@]+"${live[@]}"}; do
    "$here/live.sh" "$file"
done
exec "$@"
