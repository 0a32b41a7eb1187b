"""Unit tests for the svc-map element's hook (dib.testing: no root, no network)."""
import json
import shutil
from pathlib import Path

import fixtures

from dib.testing import HookTestCase

ELEMENT = Path(__file__).resolve().parents[1]
HELPER = ELEMENT.parents[1] / "hooks" / "svc-map"
SERVICES = "/usr/share/svc-map/services"


class TestMergeSvcMaps(HookTestCase):
    """extra-data.d/10-merge-svc-map-files."""

    element = ELEMENT
    stub_commands = ()

    def setUp(self):
        super().setUp()
        # The element as a build merges it: dib's helpers in bin/.
        copy = Path(self.useFixture(fixtures.TempDir()).path) / "svc-map"
        shutil.copytree(ELEMENT, copy, ignore=shutil.ignore_patterns("tests"))
        (copy / "bin").mkdir()
        shutil.copy2(HELPER, copy / "bin" / "svc-map")
        self.element_copy = copy

    def merge(self, maps, **env):
        # Element directories live under the fake root, visible in the sandbox.
        dirs = {}
        for name, text in maps.items():
            path = f"/srv/elements/{name}"
            self.root.mkdir(path)
            if text is not None:
                self.root.write(f"{path}/svc-map", text)
            dirs[name] = str(self.root.join(path))
        env["IMAGE_ELEMENT_YAML"] = json.dumps(dirs)
        return self.run_hook(self.element_copy, "extra-data", "10-merge-svc-map-files", env=env)

    def test_maps_resolved_for_the_distribution(self):
        self.merge({"mq": "messaging:\n  default: rabbitmq-server\n  redhat: rabbitmq\n",
                    "web": "httpd:\n  debian: apache2\n  default: httpd\ncron:\n",
                    "plain": None})
        self.assertHookSucceeded()
        self.assertEqual(json.loads(self.root.read(SERVICES)),
                         {"cron": "cron", "httpd": "apache2", "messaging": "rabbitmq-server"})
        self.assertFileMode(SERVICES, "0644")

    def test_family_mapping(self):
        self.merge({"mq": "messaging:\n  default: rabbitmq-server\n  redhat: rabbitmq\n"},
                   DISTRO_NAME="rocky")
        self.assertHookSucceeded()
        self.assertEqual(json.loads(self.root.read(SERVICES)), {"messaging": "rabbitmq"})

    def test_service_mapped_twice_fails(self):
        self.merge({"a": "httpd: apache2\n", "b": "httpd: nginx\n"})
        self.assertHookFailed()
        self.assertOutputContains("service httpd is mapped by both element a and element b")

    def test_bad_yaml_fails(self):
        self.merge({"a": "httpd: [apache2\n"})
        self.assertHookFailed()
        self.assertOutputContains("is not valid YAML")
