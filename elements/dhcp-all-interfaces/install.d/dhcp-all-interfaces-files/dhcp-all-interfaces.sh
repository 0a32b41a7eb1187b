#!/bin/bash
# Give network interfaces that nothing has configured a DHCP configuration.
#
#   dhcp-all-interfaces.sh [INTERFACE]
#
# With an interface name (the systemd unit and the upstart job pass one) only
# that interface is looked at, otherwise every interface but lo. An interface
# qualifies when its MAC address is burnt in (not made up by a driver, as
# bridges and bonds do) or when it is a VLAN on such an interface, and when
# its link comes up within DHCP_TIMEOUT seconds. If a router answers a router
# solicitation (rdisc6, from ndisc6), IPv6 is configured as the router
# advertises: DHCPv6, stateless DHCPv6 or SLAAC.
#
# Installed by the dhcp-all-interfaces element, which sets DHCP_TIMEOUT below.

if [ "${DIB_DEBUG_TRACE:-0}" -gt 0 ]; then
    set -x
fi
set -eu
set -o pipefail

DHCP_TIMEOUT=30

# ip and ifquery live in sbin, which a unit's PATH may lack.
PATH=$PATH:/usr/sbin:/sbin
SYS_NET=/sys/class/net
ENI=/etc/network/interfaces

if [ -d /etc/network ]; then
    style=eni
elif [ -d /etc/sysconfig/network-scripts ]; then
    style=ifcfg
    ifcfg_dir=/etc/sysconfig/network-scripts
elif [ -d /etc/sysconfig/network ]; then
    style=suse
    ifcfg_dir=/etc/sysconfig/network
else
    echo "dhcp-all-interfaces: no /etc/network, /etc/sysconfig/network-scripts" \
        "or /etc/sysconfig/network: do not know how to configure interfaces" >&2
    exit 1
fi

sys_value() {
    # A sysfs attribute, or $2 when it cannot be read (a down link has no carrier).
    cat "$SYS_NET/$1" 2> /dev/null || echo "$2"
}

is_vlan() {
    # A VLAN copies the MAC of the interface under it (eth0.42 on eth0), so
    # its address counts as assigned (2) while the lower one is burnt in (0).
    local interface=$1 lower
    [ "$(sys_value "$interface/addr_assign_type" 0)" = 2 ] || return 1
    lower=${interface%%.*}
    [ "$lower" != "$interface" ] || return 1
    [ "$(sys_value "$lower/addr_assign_type" 1)" = 0 ]
}

has_config() {
    local interface=$1
    if [ "$style" = eni ]; then
        [ -n "$(ifquery "$interface" 2> /dev/null || true)" ]
    else
        [ -f "$ifcfg_dir/ifcfg-$interface" ]
    fi
}

wait_for_link() {
    local interface=$1 try
    for ((try = 0; try < DHCP_TIMEOUT; try++)); do
        # Set it up on every try: some drivers drop the first request.
        ip link set dev "$interface" up > /dev/null 2>&1 || true
        if [ "$(sys_value "$interface/carrier" 0)" = 1 ]; then
            return 0
        fi
        sleep 1
    done
    return 1
}

ipv6_mode() {
    # Prints none, stateful, stateless or slaac.
    local interface=$1 try answer rc
    if ! command -v rdisc6 > /dev/null; then
        echo "rdisc6 is not installed: no IPv6 configuration for $interface" >&2
        echo none
        return 0
    fi
    for ((try = 0; try < DHCP_TIMEOUT; try++)); do
        rc=0
        answer=$(rdisc6 --retry 3 --single "$interface" 2> /dev/null) || rc=$?
        case $rc in
            0)
                if grep -Eq 'Stateful address conf\.[^:]*: *Yes' <<< "$answer"; then
                    echo stateful
                elif grep -Eq 'Stateful other conf\.[^:]*: *Yes' <<< "$answer"; then
                    echo stateless
                else
                    echo slaac
                fi
                return 0
                ;;
            1)
                # No link-local address yet: try again.
                sleep 1
                ;;
            *)
                # No router answered.
                break
                ;;
        esac
    done
    echo none
}

write_duid() {
    # dhclient's DHCPv6 DUID, of the UUID type (RFC 6355), from the machine id,
    # so that the address stays the same across reboots.
    local lease=$1 id
    id=$(tr -d '[:space:]' < /etc/machine-id 2> /dev/null || true)
    [ ${#id} -eq 32 ] || return 0
    mkdir -p "$(dirname "$lease")"
    printf 'default-duid "\\x00\\x04%s";\n' "$(sed 's/../\\x&/g' <<< "$id")" > "$lease"
}

write_eni() {
    local interface=$1 ipv6=$2
    {
        printf 'auto %s\niface %s inet dhcp\n' "$interface" "$interface"
        case $ipv6 in
            stateful) printf 'iface %s inet6 dhcp\n' "$interface";;
            stateless) printf 'iface %s inet6 auto\n    dhcp 1\n' "$interface";;
            slaac) printf 'iface %s inet6 auto\n    dhcp 0\n' "$interface";;
        esac
        printf '\n'
    } >> "$ENI"
    if [ "$ipv6" != none ]; then
        write_duid "/var/lib/dhcp/dhclient6--$interface.lease"
    fi
}

write_ifcfg() {
    local interface=$1 ipv6=$2 file="$ifcfg_dir/ifcfg-$1"
    if [ "$(sys_value "$interface/type" 1)" = 32 ]; then
        printf '%s\n' "DEVICE=\"$interface\"" 'BOOTPROTO="dhcp"' 'ONBOOT="yes"' \
            'TYPE="InfiniBand"' 'CONNECTED_MODE="no"' 'DEFROUTE="yes"' 'PEERDNS="yes"' \
            'PEERROUTES="yes"' 'IPV4_FAILURE_FATAL="yes"' 'IPV6INIT="no"' > "$file"
        return 0
    fi
    if is_vlan "$interface"; then
        printf '%s\n' "DEVICE=\"$interface\"" 'BOOTPROTO="dhcp"' 'ONBOOT="yes"' \
            'VLAN="yes"' > "$file"
    else
        printf '%s\n' "DEVICE=\"$interface\"" 'BOOTPROTO="dhcp"' 'ONBOOT="yes"' \
            'TYPE="Ethernet"' > "$file"
    fi
    [ "$ipv6" != none ] || return 0
    write_duid "/var/lib/dhclient/dhclient6--$interface.lease"
    echo 'IPV6INIT="yes"' >> "$file"
    case $ipv6 in
        stateful) printf '%s\n' 'IPV6_FORCE_ACCEPT_RA="yes"' 'DHCPV6C="yes"' >> "$file";;
        stateless) printf '%s\n' 'IPV6_AUTOCONF="yes"' 'DHCPV6C="yes"' \
            'DHCPV6C_OPTIONS="-S"' >> "$file";;
        slaac) echo 'IPV6_AUTOCONF="yes"' >> "$file";;
    esac
}

configure() {
    local interface=$1 ipv6
    if has_config "$interface"; then
        echo "$interface: already configured, left alone"
        return 0
    fi
    if ! is_vlan "$interface" && [ "$(sys_value "$interface/addr_assign_type" 1)" != 0 ]; then
        echo "$interface: MAC address not burnt in (virtual device), left alone"
        return 0
    fi
    if ! wait_for_link "$interface"; then
        echo "$interface: no link after $DHCP_TIMEOUT s, left alone"
        return 0
    fi
    ipv6=$(ipv6_mode "$interface")
    case $style in
        eni) write_eni "$interface" "$ipv6";;
        ifcfg) write_ifcfg "$interface" "$ipv6";;
        suse) printf '%s\n' 'BOOTPROTO="dhcp"' 'STARTMODE="auto"' > "$ifcfg_dir/ifcfg-$interface";;
    esac
    echo "$interface: configured for DHCP (IPv6: $ipv6)"
}

if [ "$style" = eni ]; then
    # One instance runs per interface at once; they all append to one file.
    touch "$ENI"
    exec 9< "$ENI"
    flock -x 9
fi

if [ $# -gt 0 ] && [ -n "$1" ]; then
    configure "$1"
else
    for path in "$SYS_NET"/*; do
        [ -e "$path" ] || continue
        name=${path##*/}
        [ "$name" = lo ] || configure "$name"
    done
fi
