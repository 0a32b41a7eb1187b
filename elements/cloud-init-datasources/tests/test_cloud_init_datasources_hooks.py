"""Unit tests for the cloud-init-datasources element (dib.testing: no root, no network)."""
from pathlib import Path

import yaml

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
CHECK = "05-check-cloud-init-datasources"
SET = "05-set-cloud-init-sources"
CFG = "/etc/cloud/cloud.cfg.d/91-dib-cloud-init-datasources.cfg"
EC2 = "/etc/cloud/cloud.cfg.d/92-ec2-datasource.cfg"
NET = "/etc/cloud/cloud.cfg.d/93-dib-cloud-init-disable-datasource-network-activation.cfg"


class TestCheck(HookTestCase):
    """preflight.d/05-check-cloud-init-datasources."""

    element = ELEMENT
    stub_commands = ()

    def check(self, value):
        env = {} if value is None else {"DIB_CLOUD_INIT_DATASOURCES": value}
        return self.run_hook("preflight", CHECK, env=env)

    def test_known_names_pass(self):
        self.check("ConfigDrive, OpenStack,NoCloud")
        self.assertHookSucceeded()

    def test_unset_is_an_error_listing_the_names(self):
        self.check(None)
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("cloud-init-datasources (preflight.d/05-check-cloud-init-"
                                  "datasources): DIB_CLOUD_INIT_DATASOURCES is not set")
        self.assertOutputContains("Known names: ")
        self.assertOutputContains(" OpenStack ")

    def test_only_commas_is_unset(self):
        self.check(" , ")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_CLOUD_INIT_DATASOURCES is not set")

    def test_unknown_name_is_an_error(self):
        self.check("OpenStack, Openstak")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("DIB_CLOUD_INIT_DATASOURCES='OpenStack, Openstak' names "
                                  "datasources cloud-init does not know: 'Openstak'")
        self.assertOutputContains("Known names: Akamai AliYun")

    def test_wrong_case_gets_a_hint(self):
        self.check("EC2")
        self.assertHookFailed(exit_code=1)
        self.assertOutputContains("'EC2' (did you mean Ec2? names are case-sensitive)")


class TestWriteConfig(HookTestCase):
    """install.d/05-set-cloud-init-sources."""

    element = ELEMENT
    stub_commands = ()

    def write(self, value):
        return self.run_hook("install", SET, env={"DIB_CLOUD_INIT_DATASOURCES": value})

    def test_list_with_none_last(self):
        self.write("NoCloud, OpenStack")
        self.assertHookSucceeded()
        self.assertEqual(yaml.safe_load(self.root.read(CFG)),
                         {"datasource_list": ["NoCloud", "OpenStack", "None"]})
        self.assertFileAbsent(EC2)
        self.assertFileAbsent(NET)

    def test_none_given_is_not_repeated(self):
        self.write("None")
        self.assertHookSucceeded()
        self.assertEqual(yaml.safe_load(self.root.read(CFG)), {"datasource_list": ["None"]})

    def test_ec2_is_not_strict(self):
        self.write("Ec2")
        self.assertHookSucceeded()
        self.assertEqual(yaml.safe_load(self.root.read(EC2)),
                         {"datasource": {"Ec2": {"strict_id": False}}})
        self.assertFileAbsent(NET)

    def test_config_drive_turns_network_activation_off(self):
        self.write("ConfigDrive,OpenStack")
        self.assertHookSucceeded()
        self.assertEqual(yaml.safe_load(self.root.read(NET)),
                         {"disable_network_activation": True})
        self.assertFileAbsent(EC2)

    def test_names_are_matched_whole(self):
        # "Ec2" inside another name must not switch on the Ec2 settings.
        self.write("NoCloud, Ec2Local")
        self.assertHookSucceeded()
        self.assertFileAbsent(EC2)
