"""Unit tests for the dhcp-all-interfaces element (dib.testing: no root, no network).

Besides the build hooks, the boot-time script is run as the image would run
it: installed by the hook into the fake root, against a fake /sys/class/net,
with ip, ifquery, rdisc6 and sleep stubbed.
"""
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
SCRIPT = "/usr/local/sbin/dhcp-all-interfaces.sh"
UNIT = "/usr/lib/systemd/system/dhcp-interface@.service"
RULES = "/etc/udev/rules.d/99-dhcp-all-interfaces.rules"
NM_CONF = "/etc/NetworkManager/conf.d/00-main.conf"
ENI = "/etc/network/interfaces"
MACHINE_ID = "0123456789abcdef0123456789abcdef"


class TestInstallHook(HookTestCase):
    """install.d/50-dhcp-all-interfaces."""

    element = ELEMENT
    stub_commands = ("update-rc.d", "chkconfig", "rc-update", "dnf", "yum")

    def install(self, **env):
        return self.run_hook("install", "50-dhcp-all-interfaces", env=env)

    def test_systemd_gets_script_unit_and_udev_rule(self):
        self.install()
        self.assertHookSucceeded()
        self.assertFileMode(SCRIPT, "0755")
        self.assertFileContains(SCRIPT, regex=r"(?m)^DHCP_TIMEOUT=30$")
        self.assertFileMode(UNIT, "0644")
        self.assertFileContains(UNIT, regex=r"(?m)^TimeoutStartSec=60s$")
        self.assertFileContains(UNIT, regex=r"(?m)^ExecStartPre=" + SCRIPT + " %i$")
        self.assertFileContains(RULES, 'ENV{SYSTEMD_WANTS}+="dhcp-interface@$name.service"')
        self.assertFileAbsent(NM_CONF)
        self.assertFileAbsent("/etc/init.d/dhcp-all-interfaces")

    def test_timeout_reaches_script_unit_and_dhclient(self):
        self.root.write("/etc/dhcp/dhclient.conf",
                        "option rfc3442-classless-static-routes code 121 = array of integer 8;\n"
                        "timeout 300;\nretry 60;\n")
        self.install(DIB_DHCP_TIMEOUT="45")
        self.assertHookSucceeded()
        self.assertFileContains(SCRIPT, regex=r"(?m)^DHCP_TIMEOUT=45$")
        self.assertFileContains(UNIT, regex=r"(?m)^TimeoutStartSec=90s$")
        conf = self.root.read("/etc/dhcp/dhclient.conf")
        self.assertRegex(conf, r"(?m)^timeout 45;$")
        self.assertNotRegex(conf, r"(?m)^timeout 300;$")
        self.assertNotRegex(conf, r"(?m)^retry ")
        self.assertIn("option rfc3442-classless-static-routes", conf)

    def test_dhclient_conf_without_timeout_gets_one(self):
        self.root.write("/etc/dhcp/dhclient.conf", "request subnet-mask;\n")
        self.install()
        self.assertHookSucceeded()
        self.assertRegex(self.root.read("/etc/dhcp/dhclient.conf"),
                         r"^request subnet-mask;\n.*\ntimeout 30;\n$")

    def test_bad_timeouts_are_refused_before_anything_is_installed(self):
        for value in ("abc", "0", "-5", "30s"):
            result = self.install(DIB_DHCP_TIMEOUT=value)
            self.assertHookFailed(result, exit_code=1)
            self.assertOutputContains(f"DIB_DHCP_TIMEOUT='{value}'")
            self.assertOutputContains("dhcp-all-interfaces")
            self.assertFileAbsent(SCRIPT)

    def test_network_manager_configured_and_script_still_installed(self):
        self.root.mkdir("/etc/NetworkManager")
        self.install(DIB_DHCP_TIMEOUT="60")
        self.assertHookSucceeded()
        conf = self.root.read(NM_CONF)
        self.assertIn("ignore-carrier=*", conf)
        self.assertRegex(conf, r"(?m)^dhcp=internal$")
        self.assertRegex(conf, r"(?m)^autoconnect-retries=-1$")
        self.assertRegex(conf, r"(?m)^ipv4.dhcp-timeout=60$")
        self.assertRegex(conf, r"(?m)^ipv6.dhcp-timeout=60$")
        self.assertFileExists(SCRIPT)
        self.assertFileExists(UNIT)

    def test_network_manager_auto_installs_only_its_configuration(self):
        self.root.mkdir("/etc/NetworkManager")
        self.install(DIB_DHCP_NETWORK_MANAGER_AUTO="true")
        self.assertHookSucceeded()
        self.assertFileExists(NM_CONF)
        self.assertFileAbsent(SCRIPT)
        self.assertFileAbsent(UNIT)
        self.assertFileAbsent(RULES)

    def test_network_manager_auto_without_network_manager_installs_the_script(self):
        self.install(DIB_DHCP_NETWORK_MANAGER_AUTO="true")
        self.assertHookSucceeded()
        self.assertFileExists(SCRIPT)
        self.assertFileAbsent(NM_CONF)

    def test_bad_network_manager_auto_value_is_refused(self):
        self.install(DIB_DHCP_NETWORK_MANAGER_AUTO="yes")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_DHCP_NETWORK_MANAGER_AUTO='yes'")

    def test_red_hat_8_network_manager_uses_dhclient_and_tries_ndisc6(self):
        self.root.write("/etc/redhat-release", "CentOS Stream release 8\n")
        self.root.mkdir("/etc/NetworkManager")
        self.stubs.add("dnf", exit_code=1)  # not packaged there: must not fail the build
        self.install(DISTRO_NAME="centos", DIB_RELEASE="8-stream")
        self.assertHookSucceeded()
        self.assertFileContains(NM_CONF, regex=r"(?m)^dhcp=dhclient$")
        self.assertCalled("dnf", "-y", "install", "ndisc6", exact=True)

    def test_dhcp_client_variable_wins(self):
        self.root.mkdir("/etc/NetworkManager")
        self.install(DIB_DHCP_CLIENT="dhcpcd")
        self.assertHookSucceeded()
        self.assertFileContains(NM_CONF, regex=r"(?m)^dhcp=dhcpcd$")

    def test_sysv_init_script(self):
        self.install(DIB_INIT_SYSTEM="sysv")
        self.assertHookSucceeded()
        self.assertFileMode("/etc/init.d/dhcp-all-interfaces", "0755")
        self.assertCalled("update-rc.d", "dhcp-all-interfaces", "defaults", exact=True)
        self.assertFileAbsent(UNIT)

    def test_upstart_job(self):
        self.install(DIB_INIT_SYSTEM="upstart", DISTRO_NAME="ubuntu")
        self.assertHookSucceeded()
        self.assertFileContains("/etc/init/dhcp-all-interfaces.conf",
                                f"exec {SCRIPT} $INTERFACE")

    def test_gentoo_uses_dhcpcd(self):
        self.root.write("/etc/dhcpcd.conf",
                        "option domain_name, domain_search, host_name\nslaac private\n")
        self.install(DIB_INIT_SYSTEM="openrc", DISTRO_NAME="gentoo")
        self.assertHookSucceeded()
        self.assertCalled("rc-update", "add", "dhcpcd", "default", exact=True)
        self.assertEqual(self.root.read("/etc/dhcpcd.conf"),
                         "option domain_search\n#slaac private\n")
        self.assertFileAbsent(SCRIPT)

    def test_unknown_init_system_fails(self):
        self.install(DIB_INIT_SYSTEM="runit")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_INIT_SYSTEM 'runit'")


class TestRemoveCloudImageInterfaces(HookTestCase):
    """install.d/60-remove-cloud-image-interfaces."""

    element = ELEMENT
    stub_commands = ()

    def test_debian_keeps_only_the_loopback(self):
        self.root.write(ENI, "source /etc/network/interfaces.d/*\nauto eth0\n"
                             "iface eth0 inet dhcp\n")
        self.root.write("/etc/network/interfaces.d/eth0", "auto eth0\niface eth0 inet dhcp\n")
        self.root.write("/etc/network/interfaces.d/ens3", "auto ens3\niface ens3 inet dhcp\n")
        self.run_hook("install", "60-remove-cloud-image-interfaces")
        self.assertHookSucceeded()
        self.assertEqual(self.root.listdir("/etc/network/interfaces.d"), [])
        self.assertEqual(self.root.read(ENI), "auto lo\niface lo inet loopback\n\n"
                                              "source /etc/network/interfaces.d/*\n\n")

    def test_red_hat_keeps_the_loopback_file(self):
        scripts = "/etc/sysconfig/network-scripts"
        for name in ("ifcfg-lo", "ifcfg-eth0", "ifcfg-ens3"):
            self.root.write(f"{scripts}/{name}", "ONBOOT=yes\n")
        self.root.write(f"{scripts}/ifup-eth", "#!/bin/sh\n")
        self.run_hook("install", "60-remove-cloud-image-interfaces",
                      env={"DISTRO_NAME": "centos"})
        self.assertHookSucceeded()
        self.assertEqual(sorted(self.root.listdir(scripts)), ["ifcfg-lo", "ifup-eth"])
        self.assertFileAbsent(ENI)


class TestBootScript(HookTestCase):
    """/usr/local/sbin/dhcp-all-interfaces.sh as installed, run against a fake sysfs."""

    element = ELEMENT
    stub_commands = {"ip": None, "ifquery": 1, "rdisc6": 2, "sleep": None}

    def setUp(self):
        super().setUp()
        self.root.write("/etc/machine-id", MACHINE_ID + "\n")

    def install(self, *, style="eni", timeout="30"):
        if style == "eni":
            self.root.write(ENI, "auto lo\niface lo inet loopback\n")
        else:
            self.root.mkdir("/etc/sysconfig/network-scripts")
        self.run_hook("install", "50-dhcp-all-interfaces", env={"DIB_DHCP_TIMEOUT": timeout})
        self.assertHookSucceeded()

    def interface(self, name, *, assign_type=0, carrier=1, if_type=1):
        base = f"/sys/class/net/{name}"
        self.root.write(f"{base}/addr_assign_type", f"{assign_type}\n")
        self.root.write(f"{base}/type", f"{if_type}\n")
        if carrier is not None:
            self.root.write(f"{base}/carrier", f"{carrier}\n")

    def boot(self, *args):
        """Run the installed script in the fake root, as the unit would."""
        probe = Path(self.useFixture(fixtures.TempDir()).path) / "boot-probe"
        hook = probe / "install.d" / "10-run"
        hook.parent.mkdir(parents=True)
        hook.write_text("#!/bin/bash\nexec " + " ".join([SCRIPT, *args]) + "\n")
        hook.chmod(0o755)
        return self.run_hook(probe, "install", "10-run")

    def test_interface_with_link_gets_dhcp(self):
        self.install()
        self.interface("eth0")
        self.boot("eth0")
        self.assertHookSucceeded()
        self.assertEqual(self.root.read(ENI), "auto lo\niface lo inet loopback\n"
                                              "auto eth0\niface eth0 inet dhcp\n\n")
        self.assertCalled("ip", "link", "set", "dev", "eth0", "up", exact=True)
        self.assertCalled("rdisc6", "--retry", "3", "--single", "eth0", exact=True)

    def test_every_real_interface_without_argument(self):
        self.install()
        self.interface("lo", assign_type=0)
        self.interface("eth0")
        self.interface("eth1")
        self.interface("br0", assign_type=3)
        self.interface("bond0", assign_type=1)
        self.boot()
        self.assertHookSucceeded()
        eni = self.root.read(ENI)
        self.assertIn("auto eth0\niface eth0 inet dhcp\n", eni)
        self.assertIn("auto eth1\niface eth1 inet dhcp\n", eni)
        for name in ("lo inet dhcp", "br0", "bond0"):
            self.assertNotIn(name, eni)
        self.assertOutputContains("br0: MAC address not burnt in")

    def test_configured_interface_is_left_alone(self):
        self.install()
        self.interface("eth0")
        self.stubs.add("ifquery", stdout="address: 192.0.2.10\n")
        self.boot("eth0")
        self.assertHookSucceeded()
        self.assertNotIn("eth0", self.root.read(ENI))
        self.assertNotCalled("ip")

    def test_no_link_waits_the_timeout_then_gives_up(self):
        self.install(timeout="3")
        self.interface("eth0", carrier=0)
        self.boot("eth0")
        self.assertHookSucceeded()
        self.assertEqual(len(self.stubs.calls("sleep")), 3)
        self.assertEqual(len(self.stubs.calls("ip")), 3)
        self.assertNotIn("eth0", self.root.read(ENI))
        self.assertOutputContains("eth0: no link after 3 s")

    def test_link_that_comes_up_late_is_configured(self):
        self.install(timeout="5")
        self.interface("eth0", carrier=None)  # unreadable while down
        self.stubs.add("sleep", script="echo 1 > /sys/class/net/eth0/carrier")
        self.boot("eth0")
        self.assertHookSucceeded()
        self.assertEqual(len(self.stubs.calls("sleep")), 1)
        self.assertIn("iface eth0 inet dhcp", self.root.read(ENI))

    def test_stateful_dhcpv6_when_the_router_says_so(self):
        self.install()
        self.interface("eth0")
        self.stubs.add("rdisc6", stdout="Hop limit                 :           64\n"
                                        "Stateful address conf.    :          Yes\n"
                                        "Stateful other conf.      :           No\n")
        self.boot("eth0")
        self.assertHookSucceeded()
        self.assertIn("auto eth0\niface eth0 inet dhcp\niface eth0 inet6 dhcp\n",
                      self.root.read(ENI))
        duid = "".join(f"\\x{MACHINE_ID[i:i + 2]}" for i in range(0, 32, 2))
        self.assertEqual(self.root.read("/var/lib/dhcp/dhclient6--eth0.lease"),
                         f'default-duid "\\x00\\x04{duid}";\n')

    def test_stateless_and_slaac(self):
        self.install()
        self.interface("eth0")
        self.interface("eth1")
        self.stubs.add("rdisc6", script=(
            'case "$*" in *eth0*) printf "Stateful address conf. : No\\n'
            'Stateful other conf. : Yes\\n";; *) printf "Stateful address conf. : No\\n'
            'Stateful other conf. : No\\n";; esac'))
        self.boot()
        self.assertHookSucceeded()
        eni = self.root.read(ENI)
        self.assertIn("iface eth0 inet6 auto\n    dhcp 1\n", eni)
        self.assertIn("iface eth1 inet6 auto\n    dhcp 0\n", eni)

    def test_vlan_on_a_real_interface_is_configured(self):
        self.install()
        self.interface("eth0")
        self.interface("eth0.42", assign_type=2)
        self.boot("eth0.42")
        self.assertHookSucceeded()
        self.assertIn("iface eth0.42 inet dhcp", self.root.read(ENI))

    def test_red_hat_ifcfg_files(self):
        self.install(style="ifcfg")
        self.interface("eth0")
        self.interface("ib0", if_type=32)
        self.boot()
        self.assertHookSucceeded()
        scripts = "/etc/sysconfig/network-scripts"
        self.assertEqual(self.root.read(f"{scripts}/ifcfg-eth0"),
                         'DEVICE="eth0"\nBOOTPROTO="dhcp"\nONBOOT="yes"\nTYPE="Ethernet"\n')
        self.assertFileContains(f"{scripts}/ifcfg-ib0", 'TYPE="InfiniBand"')
        self.assertNotCalled("ifquery")

    def test_unknown_network_layout_fails(self):
        self.install()
        self.root.join(ENI).unlink()
        self.root.join("/etc/network").rmdir()
        self.interface("eth0")
        self.boot("eth0")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("do not know how to configure interfaces")
