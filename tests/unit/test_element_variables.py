"""Which DIB_* variables an element reads and sets (dib.elements.variables)."""
from __future__ import annotations

import pytest

from dib.elements.variables import classify_line, scan_element


@pytest.mark.parametrize("line, reads, sets", [
    ('echo "${DIB_A:-x}"', ["DIB_A"], []),
    ("export DIB_A=${DIB_A:-1}", ["DIB_A"], ["DIB_A"]),
    ("DIB_A=1", [], ["DIB_A"]),
    ("    local DIB_A=$DIB_B", ["DIB_B"], ["DIB_A"]),
    ("DIB_A+=' more'", ["DIB_A"], ["DIB_A"]),
    ("export DIB_A", [], []),
    ("unset DIB_A DIB_B", [], []),
    ("# DIB_A=1 switches it on", ["DIB_A"], []),
    ('echo "set DIB_A=30, e.g." >&2', ["DIB_A"], []),
    ('os.environ.get("DIB_A", "")', ["DIB_A"], []),
    ("  when: DIB_A = 1", ["DIB_A"], []),
    ("MY_DIB_A=1 NOT_DIB=2", [], []),
])
def test_classify_line(line, reads, sets):
    assert classify_line(line) == (reads, sets)


def test_scan_element(tree):
    element = tree.add("x", hooks={"install": {"50-x": 'echo "$DIB_X_MODE $DIB_OTHER"\n'}},
                       files={
        "environment.d/10-x.bash": ("export DIB_X_OWN=1\n"
                                    "export DIB_X_MODE=${DIB_X_MODE:-a}\n"
                                    "if [ -n \"${DIB_X_FLAG:-}\" ]; then\n"
                                    "    DIB_X_COND=1\nfi\n"
                                    "echo \"$DIB_X_OWN $DIB_X_COND\"\n"),
        "package-installs.yaml": "vim:\n  when: DIB_X_PKG = 1\n",
        "tests/test_x.py": "DIB_X_TEST = 1\nprint('DIB_X_TEST')\n",
        "test-elements/t/environment.d/10-t.bash": "export DIB_X_MODE=b\necho $DIB_X_T\n",
        "static/etc/x.conf": "# DIB_X_STATIC\n",
        "README.rst": "DIB_X_README\n"})
    found = scan_element(element)
    # DIB_X_OWN is assigned before it is read: the element's own value.
    # DIB_X_COND is assigned only inside an if: a user's value may survive.
    assert sorted(found.reads) == ["DIB_OTHER", "DIB_X_COND", "DIB_X_FLAG", "DIB_X_MODE",
                                   "DIB_X_PKG"]
    assert found.files_reading("DIB_X_MODE") == [element / "environment.d/10-x.bash",
                                                 element / "install.d/50-x"]
    assert found.reads["DIB_X_PKG"] == [(element / "package-installs.yaml", 2)]
    assert found.sets == {"DIB_X_OWN", "DIB_X_MODE", "DIB_X_COND"}
