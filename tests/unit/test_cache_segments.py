"""A phase whose first hooks declare what they read (``# dib-cache: reads``)
makes those hooks a cache step of their own, keyed on what they declare."""
from __future__ import annotations

import os
from pathlib import Path

from dib.cache import keys
from dib.runtime.environment import sourced_environment

PACKAGES = ("#!/bin/bash\n# dib-cache: reads package-installs.json install.d/package-installs-*\n"
            "install-packages $(cat /tmp/in_target.d/package-installs.json)\n")


def hook(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def make_hooks(root: Path) -> Path:
    hooks = root / "hooks"
    hook(hooks / "install.d" / "01-package-installs", PACKAGES)
    hook(hooks / "install.d" / "50-configure", "#!/bin/bash\ncp /tmp/in_target.d/static/* /etc\n")
    hook(hooks / "bin" / "install-packages",
         '#!/bin/bash\napt-get install "$@" # $DIB_APT_OPTIONS $http_proxy\n')
    hook(hooks / "bin" / "dib-run-parts", "#!/bin/bash\n")
    hook(hooks / "bin" / "unrelated-helper", "#!/bin/bash\n")
    (hooks / "package-installs.json").write_text('{"install.d": ["vim"]}\n')
    (hooks / "static").mkdir()
    (hooks / "static" / "motd").write_text("hello\n")
    (hooks / "environment.d").mkdir()
    (hooks / "environment.d" / "10-os.bash").write_text("export DIB_RELEASE=bookworm\n")
    return hooks


def segments(hooks: Path, phase: str = "install.d") -> list[keys.Segment]:
    directory = hooks / phase
    return keys.phase_segments(directory, sorted(p.name for p in directory.iterdir()))


def segment_keys(hooks: Path, **caller: str) -> list[str]:
    """Each segment's key as a build makes it: environment.d really sourced."""
    env = sourced_environment(hooks, {"PATH": os.environ["PATH"], "ARCH": "amd64",
                                      "IMAGE_NAME": "/out/img", **caller})
    settings = keys.settings_inputs(env, image_name=env["IMAGE_NAME"])
    out = []
    for segment in segments(hooks):
        if segment.declared:
            inputs = keys.declared_inputs(hooks, "install.d", segment, settings, env)
        else:
            inputs = keys.phase_inputs(hooks, "install.d", settings, environment=env)
        out.append(keys.key_for(None, "install", inputs))
    return out


def test_the_declared_first_hooks_are_a_step_and_the_rest_another(tmp_path):
    hooks = make_hooks(tmp_path)
    first, rest = segments(hooks)
    assert first == keys.Segment(("01-package-installs",), declared=True,
                                 through="01-package-installs")
    assert rest == keys.Segment(("50-configure",), declared=False, after="01-package-installs")


def test_a_phase_split_nowhere_when_its_first_hook_declares_nothing(tmp_path):
    hooks = make_hooks(tmp_path)
    hook(hooks / "install.d" / "00-early", "#!/bin/bash\ntrue\n")
    assert segments(hooks) == [keys.Segment(("00-early", "01-package-installs",
                                             "50-configure"), declared=False)]


def test_a_phase_whose_hooks_all_declare_is_one_declared_step(tmp_path):
    hooks = make_hooks(tmp_path)
    hook(hooks / "install.d" / "50-configure", "#!/bin/bash\n# dib-cache: reads static\ntrue\n")
    assert segments(hooks) == [keys.Segment(("01-package-installs", "50-configure"),
                                            declared=True)]


def test_a_declaration_that_leaves_the_hooks_tree_counts_as_none(tmp_path):
    hooks = make_hooks(tmp_path)
    for reads in ("../elsewhere", "/etc/passwd", "static/../../x"):
        hook(hooks / "install.d" / "01-package-installs",
             f"#!/bin/bash\n# dib-cache: reads {reads}\n")
        assert keys.declared_reads(hooks / "install.d" / "01-package-installs") is None
        assert not segments(hooks)[0].declared


def test_what_the_first_hooks_do_not_read_leaves_their_key(tmp_path):
    hooks = make_hooks(tmp_path)
    packages, rest = segment_keys(hooks)
    # another element's data, environment.d, a helper and a later hook
    (hooks / "static" / "motd").write_text("changed\n")
    (hooks / "environment.d" / "20-case.bash").write_text("export DIB_CASE_VALUE=1\n")
    hook(hooks / "bin" / "unrelated-helper", "#!/bin/bash\necho changed\n")
    hook(hooks / "install.d" / "60-case", "#!/bin/bash\ntrue\n")
    again = segment_keys(hooks)
    assert again[0] == packages
    assert again[1] != rest


def test_what_the_first_hooks_declare_or_name_changes_their_key(tmp_path):
    hooks = make_hooks(tmp_path)
    plain = segment_keys(hooks)[0]

    def changed(edit) -> bool:
        copy = make_hooks(tmp_path / str(len(list(tmp_path.iterdir()))))
        edit(copy)
        return segment_keys(copy)[0] != plain
    # the declared package list, and a legacy list the pattern matches
    assert changed(lambda h: (h / "package-installs.json").write_text(
        '{"install.d": ["emacs"]}\n'))
    assert changed(lambda h: (h / "install.d" / "package-installs-extra").write_text("curl\n"))
    # the hook itself and a helper it names
    assert changed(lambda h: hook(h / "install.d" / "01-package-installs", PACKAGES + "true\n"))
    assert changed(lambda h: hook(h / "bin" / "install-packages", "#!/bin/bash\napt-get -y\n"))
    # variables the helper names, whoever sets them
    assert changed(lambda h: (h / "environment.d" / "20-apt.bash").write_text(
        "export DIB_APT_OPTIONS=--no-install-recommends\n"))
    assert changed(lambda h: (h / "environment.d" / "20-proxy.bash").write_text(
        "export http_proxy=http://proxy.invalid:3128\n"))
    assert not changed(lambda h: None)


def test_a_never_cached_hook_among_the_first_keeps_them_uncached(tmp_path):
    hooks = make_hooks(tmp_path)
    hook(hooks / "install.d" / "01-package-installs",
         PACKAGES.replace("# dib-cache: reads", "# dib-cache: never\n# dib-cache: reads"))
    first, second = segment_keys(hooks), segment_keys(hooks)
    assert first[0] != second[0]
