"""``dib test``: case discovery, the sentinel rule, expectations wiring and the
reports. No root, no network: the pipeline's build is replaced by a fake that
leaves what a real one would (an image tar, or a failed workspace)."""
from __future__ import annotations

import io
import json
import os
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from dib.cli.main import main as dib_main
from dib.elements import find_elements
from dib.errors import DibError, HookError
from dib.pipeline.report import BuildReport, FailureReport
from dib.runtime import tree
from dib.testing import functional as ft
from dib.testing.expect import ExpectationError

def _failed_report(error: Exception) -> dict:
    """The JSON report a build writes when it fails with ``error``."""
    report = BuildReport("image", ["tiny"], failure=FailureReport.from_error(error))
    return json.loads(json.dumps(report.as_dict()))


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture
def elements(tree):
    """tiny (two cases) and bare (none), plus an OS element and debian-minimal."""
    tree.os_element("fake-os")
    tree.add("debian-minimal", provides=["operating-system"])
    tree.add("tiny", hooks={"install": ["10-tiny"]})
    tree.add("bare")
    tree.add("tiny/test-elements/basic", deps=["tiny"],
             files={"expect.yaml": "files_present: [/etc/tiny]\n"})
    tree.add("tiny/test-elements/on-fake-os", deps=["fake-os", "tiny"])
    return tree


@pytest.fixture
def index(elements):
    return find_elements([elements.root])


# -- discovery ------------------------------------------------------------------------


def test_element_selects_all_its_cases(index):
    cases = ft.discover_cases(["tiny"], index)
    assert [c.id for c in cases] == ["tiny/basic", "tiny/on-fake-os"]
    assert cases[0].search_dir == index["tiny"].path / "test-elements"


def test_element_slash_case_selects_one(index):
    assert [c.id for c in ft.discover_cases(["tiny/on-fake-os"], index)] == ["tiny/on-fake-os"]


def test_all_finds_every_element_with_cases_once(index):
    assert [c.id for c in ft.discover_cases(["tiny"], index, all_elements=True)] == \
        ["tiny/basic", "tiny/on-fake-os"]


def test_unknown_element_is_usage_error_with_suggestion(index):
    with pytest.raises(ft.CaseSelectionError) as info:
        ft.discover_cases(["tinny"], index)
    assert "element 'tinny' not found" in str(info.value)
    assert "'tiny'" in str(info.value)
    assert info.value.exit_code == 2


def test_unknown_case_suggests_close_names(index):
    with pytest.raises(ft.CaseSelectionError) as info:
        ft.discover_cases(["tiny/basik"], index)
    assert "has no test-element 'basik'" in str(info.value)
    assert "'basic'" in str(info.value)


def test_element_without_cases_says_so(index):
    with pytest.raises(ft.CaseSelectionError, match="'bare' has no test-elements"):
        ft.discover_cases(["bare"], index)


def test_no_target_is_usage_error(index):
    with pytest.raises(ft.CaseSelectionError, match="no element given"):
        ft.discover_cases([], index)


def test_unit_targets(index, elements):
    (elements.path("tiny") / "tests").mkdir()
    assert [e.name for e in ft.elements_for_unit([], index, all_elements=True)] == ["tiny"]
    with pytest.raises(ft.CaseSelectionError, match="'nope' not found"):
        ft.elements_for_unit(["nope"], index, all_elements=False)


# -- one case's inputs ------------------------------------------------------------------


def test_os_added_only_when_the_case_lacks_one(index, elements):
    basic, on_os = ft.discover_cases(["tiny"], index)
    index = find_elements([basic.search_dir, elements.root])   # as a case build sees it
    assert ft.case_elements(basic, index) == ["tiny", "basic", "debian-minimal"]
    assert ft.case_elements(on_os, index) == ["tiny", "on-fake-os"]
    assert ft.case_elements(on_os, index, boot=True) == ["tiny", "on-fake-os", "vm"]
    assert ft.case_elements(basic, index, default_os="fake-os") == ["tiny", "basic", "fake-os"]


def test_output_formats(tmp_path):
    assert ft.read_output_formats(tmp_path) == ("tar",)
    (tmp_path / "test-output-formats").write_text("tar, qcow2\n# comment\nqcow2\n")
    assert ft.read_output_formats(tmp_path) == ("tar", "qcow2")
    (tmp_path / "test-output-formats").write_text("# nothing\n")
    with pytest.raises(ft.CaseError, match="test-output-formats: no output type"):
        ft.read_output_formats(tmp_path)


def test_case_environ_puts_test_elements_first(index):
    case = ft.discover_cases(["tiny/basic"], index)[0]
    env = ft.case_environ(case, {"ELEMENTS_PATH": "/a:/b", "break": "after-error"})
    assert env["ELEMENTS_PATH"] == f"{case.search_dir}:/a:/b"
    assert "break" not in env
    assert ft.case_environ(case, {})["ELEMENTS_PATH"] == str(case.search_dir)


def test_bad_expect_yaml_names_file_and_key(index, elements):
    case = ft.discover_cases(["tiny/basic"], index)[0]
    (case.path / "expect.yaml").write_text("files_present: [/etc/a]\nfile_contain: {}\n")
    with pytest.raises(ExpectationError) as info:
        ft.check_case_metadata(case, find_elements([case.search_dir, elements.root]))
    text = str(info.value)
    assert str(case.path / "expect.yaml") in text and "file_contain" in text


def test_bad_expect_value_names_the_key(index, elements):
    case = ft.discover_cases(["tiny/basic"], index)[0]
    (case.path / "expect.yaml").write_text("modes:\n  /etc/a: rwx\n")
    with pytest.raises(ExpectationError, match=r"expect.yaml: modes//etc/a"):
        ft.check_case_metadata(case, find_elements([case.search_dir, elements.root]))


def test_missing_element_deps_is_a_clear_error(index, elements):
    case = ft.discover_cases(["tiny/on-fake-os"], index)[0]
    (case.path / "element-deps").unlink()
    with pytest.raises(ft.CaseError, match="on-fake-os/element-deps is missing"):
        ft.check_case_metadata(case, find_elements([case.search_dir, elements.root]))


def test_broken_package_installs_is_a_clear_error(index, elements):
    case = ft.discover_cases(["tiny/on-fake-os"], index)[0]
    (case.path / "package-installs.yaml").write_text("foo: [unclosed\n")
    with pytest.raises(DibError, match="package-installs.yaml"):
        ft.check_case_metadata(case, find_elements([case.search_dir, elements.root]))


# -- the sentinel ------------------------------------------------------------------------


def _layer(root: Path, name: str, *, sentinel: bool = False) -> Path:
    layer = root / name
    (layer / "tmp").mkdir(parents=True)
    if sentinel:
        (layer / ft.SENTINEL).write_text("")
    return layer


def test_sentinel_found_in_any_layer(tmp_path):
    low = _layer(tmp_path, "low", sentinel=True)
    high = _layer(tmp_path, "high")
    assert ft.sentinel_in_layers([high, low])
    assert not ft.sentinel_in_layers([high])
    assert not ft.sentinel_in_layers([])


def test_sentinel_hidden_by_an_opaque_tmp(tmp_path):
    low = _layer(tmp_path, "low", sentinel=True)
    high = _layer(tmp_path, "high")
    try:
        os.setxattr(high / "tmp", "user.overlay.opaque", b"y")
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    assert not ft.sentinel_in_layers([high, low])


def test_sentinel_whiteout_hides_lower(tmp_path, monkeypatch):
    low = _layer(tmp_path, "low", sentinel=True)
    high = _layer(tmp_path, "high")
    marker = high / ft.SENTINEL
    marker.write_text("")
    # A whiteout is a 0/0 character device; creating one needs root, so fake lstat.
    real = tree.is_whiteout
    monkeypatch.setattr(tree, "is_whiteout", lambda p: p == marker or real(p))
    assert not ft.sentinel_in_layers([high, low])


def test_failed_build_layers_take_cached_steps_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    ws = tmp_path / "ws"
    cached_root = cache / "phases/entries/k1/layer"
    cached_root.mkdir(parents=True)
    (ws / "layers/02-pre-install").mkdir(parents=True)
    (ws / "layers/base").mkdir()
    report = {"steps": [{"name": "root", "key": "k1"},
                        {"name": "pre-install", "key": "k2"}]}
    assert ft.failed_build_layers(ws, report, cache) == [ws / "layers/02-pre-install",
                                                         cached_root]
    # without a report: the workspace's layers, top first
    (ws / "layers/01-root").mkdir()
    assert ft.failed_build_layers(ws, None, cache) == [ws / "layers/02-pre-install",
                                                       ws / "layers/01-root"]


@pytest.mark.parametrize("status, at_failure, in_output, want", [
    (0, False, False, ("pass", False)),
    (0, False, True, ("fail", False)),
    (1, True, False, ("pass", True)),
    (1, False, False, ("fail", False)),
])
def test_decide(status, at_failure, in_output, want):
    result, _reason, expected = ft.decide(status, sentinel_at_failure=at_failure,
                                          sentinel_in_output=in_output)
    assert (result, expected) == want


def test_tar_has_sentinel(tmp_path):
    def make(names):
        path = tmp_path / f"{len(names)}.tar"
        with tarfile.open(path, "w") as tar:
            for name in names:
                info = tarfile.TarInfo(name)
                tar.addfile(info, io.BytesIO(b""))
        return path
    assert ft.tar_has_sentinel(make(["./etc/x", "./tmp/dib-test-should-fail"]))
    assert not ft.tar_has_sentinel(make(["./etc/x"]))


def test_a_failed_hook_is_named_from_the_report():
    report = _failed_report(HookError("tiny", "install", "50-break", 3,
                                      "oops: nothing to install"))
    reason, details, hook = ft.explain_failure(report, "", hook_timeout=600)
    assert hook == "install/50-break"
    assert reason == "hook install/50-break of element 'tiny' failed with exit status 3"
    assert "oops: nothing to install" in details


def test_a_timed_out_hook_is_reported_with_the_limit():
    report = _failed_report(HookError("tiny-case", "post-install", "10-hang", 124,
                                      "sleeping", timed_out=True))
    reason, _details, hook = ft.explain_failure(report, "", hook_timeout=2)
    assert hook == "post-install/10-hang"
    assert reason == "hook post-install/10-hang of element 'tiny-case' timed out after 2 s"


def test_another_failure_gives_its_message():
    report = _failed_report(DibError("no space left on the device"))
    reason, details, hook = ft.explain_failure(report, "", hook_timeout=600)
    assert (reason, hook) == ("no space left on the device", "")
    assert "no space left" in details


def test_without_a_report_the_log_tail_is_what_there_is():
    log = "\n".join(f"line {i}" for i in range(100))
    reason, details, hook = ft.explain_failure(None, log, hook_timeout=600)
    assert reason == "the build failed" and hook == ""
    assert details.splitlines()[-1] == "line 99" and len(details.splitlines()) == ft.TAIL_LINES


# -- reports -------------------------------------------------------------------------------


def _results():
    return [
        ft.CaseResult("tiny", "basic", ft.PASS, 2.5),
        ft.CaseResult("tiny", "must-fail", ft.PASS, 3.0, reason="failed as expected",
                      expected_failure=True),
        ft.CaseResult("tiny", "broken", ft.FAIL, 4.0, reason="hook install/50-break failed",
                      details="hook install/50-break ...\n  oops <&>", hook="install/50-break"),
        ft.CaseResult("other", "meta", ft.ERROR, 0.1, reason="bad expect.yaml",
                      details="expect.yaml: file_contain: ..."),
        ft.CaseResult("other", "unit", ft.SKIP, kind="unit", reason="no tests/"),
    ]


def test_text_report():
    text = ft.format_text(_results())
    lines = text.splitlines()
    assert lines[0].split() == ["case", "result", "seconds", "reason"]
    assert any(line.startswith("tiny/broken") and "FAIL" in line for line in lines)
    assert "--- tiny/broken: FAIL in install/50-break" in text
    assert "oops <&>" in text
    assert "5 case(s): 2 passed, 1 failed, 1 error(s), 1 skipped" in text


def test_junit_report():
    root = ET.fromstring(ft.format_junit(_results()))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "1")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"tiny", "other"}
    tiny = suites["tiny"]
    assert tiny.get("tests") == "3" and tiny.get("failures") == "1"
    broken = tiny.find("testcase[@name='broken']")
    failure = broken.find("failure")
    assert "install/50-break" in failure.get("message")
    assert failure.get("type") == "install/50-break"
    assert "oops <&>" in failure.text
    assert suites["other"].find("testcase[@name='meta']/error") is not None
    assert suites["other"].find("testcase[@name='unit']/skipped") is not None
    assert tiny.find("testcase[@name='basic']/failure") is None


def test_json_report():
    data = json.loads(ft.format_json(_results()))
    assert data["summary"] == {"total": 5, "passed": 2, "failed": 1, "errors": 1,
                               "skipped": 1, "seconds": 9.6}
    broken = next(r for r in data["results"] if r["id"] == "tiny/broken")
    assert broken["status"] == "fail" and broken["hook"] == "install/50-break"
    assert data["results"][1]["expected_failure"] is True


# -- a case, with the build faked ------------------------------------------------------------


def _tar_of(files: dict[str, str], path: Path) -> None:
    with tarfile.open(path, "w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def fake_pipeline(monkeypatch):
    """Replace prepare() and build(); ``outcome`` says what the build leaves."""
    outcome = {"files": {"etc/tiny": "hello"}, "status": 0, "sentinel_in_layer": False,
               "log": "", "report": {}}
    seen = {}

    def prepare(config):
        seen["config"] = config
        return SimpleNamespace(config=config)

    def build(prepared):
        config = prepared.config
        if outcome["status"] == 0:
            _tar_of(outcome["files"], Path(config.image_name + ".tar"))
            for kind in set(config.image_types) - {"tar"}:
                Path(f"{config.image_name}.{kind}").write_bytes(b"")
            return 0
        ws = Path(config.workdir) / "dib-build-x"
        layer = ws / "layers/03-install"
        (layer / "tmp").mkdir(parents=True)
        if outcome["sentinel_in_layer"]:
            (layer / ft.SENTINEL).write_text("")
        Path(config.json_report).write_text(json.dumps(
            {"steps": [{"name": "install", "key": "not-cached"}], **outcome["report"]}))
        os.write(2, outcome["log"].encode())
        return outcome["status"]

    monkeypatch.setattr(ft, "_prepare", prepare)
    monkeypatch.setattr(ft, "_build", build)
    return outcome, seen


def _options(tmp_path, elements, **kwargs):
    return ft.Options(cache_dir=tmp_path / "cache", hook_timeout=5,
                      environ={"ELEMENTS_PATH": str(elements.root)}, **kwargs)


def _case(elements, name):
    return ft.discover_cases([f"tiny/{name}"], find_elements([elements.root]))[0]


def _left_behind(tmp_path, case):
    work = ft.case_dir_for(case, tmp_path / "cache")
    return sorted(p.name for p in work.iterdir())


def test_case_passes_and_expectations_are_checked(tmp_path, elements, fake_pipeline):
    outcome, seen = fake_pipeline
    case = _case(elements, "basic")
    result = ft.run_case(case, _options(tmp_path, elements))
    assert result.status == ft.PASS, result
    config = seen["config"]
    assert config.elements == ("tiny", "basic", "debian-minimal")
    assert config.skip_base is True and config.keep_workspace is True
    assert config.hook_timeout == 5 and config.image_types == ("tar",)
    assert config.cache_dir == str(tmp_path / "cache")
    assert config.environ["ELEMENTS_PATH"].startswith(str(case.search_dir) + ":")
    assert _left_behind(tmp_path, case) == []


def test_unmet_expectation_fails_the_case(tmp_path, elements, fake_pipeline):
    outcome, _seen = fake_pipeline
    outcome["files"] = {"etc/other": "x"}
    result = ft.run_case(_case(elements, "basic"), _options(tmp_path, elements))
    assert result.status == ft.FAIL
    assert "/etc/tiny: expected to exist" in result.reason


def test_sentinel_in_the_image_fails_the_case(tmp_path, elements, fake_pipeline):
    outcome, _seen = fake_pipeline
    outcome["files"] = {"etc/tiny": "x", ft.SENTINEL: ""}
    result = ft.run_case(_case(elements, "basic"), _options(tmp_path, elements))
    assert result.status == ft.FAIL and "should have failed" in result.reason


BROKEN_HOOK = HookError("tiny", "install", "50-break", 3, "oops: nothing to install")
BUILD_LOG = "12:00:01.100 | oops: nothing to install\ndib: error: the hook failed\n"


def test_expected_failure_passes_and_workspace_is_removed(tmp_path, elements, fake_pipeline):
    outcome, _seen = fake_pipeline
    outcome.update(status=1, sentinel_in_layer=True, log=BUILD_LOG,
                   report=_failed_report(BROKEN_HOOK))
    case = _case(elements, "on-fake-os")
    result = ft.run_case(case, _options(tmp_path, elements))
    assert result.status == ft.PASS and result.expected_failure
    assert "failed as expected" in result.reason
    assert _left_behind(tmp_path, case) == []


def test_unexpected_failure_reports_the_hook_and_its_output(tmp_path, elements,
                                                            fake_pipeline):
    outcome, _seen = fake_pipeline
    outcome.update(status=1, log=BUILD_LOG, report=_failed_report(BROKEN_HOOK))
    logs = tmp_path / "logs"
    result = ft.run_case(_case(elements, "on-fake-os"), _options(tmp_path, elements,
                                                                 log_dir=logs))
    assert result.status == ft.FAIL and not result.expected_failure
    assert result.hook == "install/50-break"
    assert "oops: nothing to install" in result.details
    assert Path(result.log).read_text().endswith(BUILD_LOG)


def test_broken_metadata_is_an_error_result_and_nothing_is_built(tmp_path, elements,
                                                                  fake_pipeline):
    _outcome, seen = fake_pipeline
    case = _case(elements, "basic")
    (case.path / "expect.yaml").write_text("files_present: /etc/tiny\n")
    result = ft.run_case(case, _options(tmp_path, elements))
    assert result.status == ft.ERROR
    assert "expect.yaml" in result.reason and "files_present" in result.reason
    assert "config" not in seen
    assert _left_behind(tmp_path, case) == []


def test_a_case_that_is_already_running_is_refused(tmp_path, elements, fake_pipeline):
    import fcntl
    case = _case(elements, "basic")
    work = ft.case_dir_for(case, tmp_path / "cache")
    work.mkdir(parents=True)
    with open(work.parent / f".{work.name}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(DibError, match="another 'dib test' is running"):
            ft.run_case(case, _options(tmp_path, elements))


# -- --release ---------------------------------------------------------------------------


def test_release_expansion_names_each_run_and_sets_dib_release(index):
    cases = ft.with_releases(ft.discover_cases(["tiny"], index), ["bookworm", "trixie"])
    assert [c.id for c in cases] == ["tiny/basic[bookworm]", "tiny/basic[trixie]",
                                     "tiny/on-fake-os[bookworm]", "tiny/on-fake-os[trixie]"]
    env = ft.case_environ(cases[1], {"DIB_RELEASE": "bullseye", "PATH": "/bin"})
    assert env["DIB_RELEASE"] == "trixie" and env["PATH"] == "/bin"
    assert ft.case_environ(ft.discover_cases(["tiny/basic"], index)[0],
                           {"DIB_RELEASE": "bullseye"})["DIB_RELEASE"] == "bullseye"
    work = {ft.case_dir_for(c, Path("/c")) for c in cases}
    assert len(work) == 4       # each run of a case has a directory of its own


def test_parse_releases():
    assert ft.parse_releases("bookworm, trixie,bookworm") == ["bookworm", "trixie"]
    with pytest.raises(ft.CaseSelectionError, match="names no release"):
        ft.parse_releases(" , ")
    with pytest.raises(ft.CaseSelectionError, match="'../x' is not a release name"):
        ft.parse_releases("bookworm,../x")


def test_a_release_run_builds_with_dib_release_and_reports_its_name(tmp_path, elements,
                                                                    fake_pipeline):
    _outcome, seen = fake_pipeline
    case, = ft.with_releases([_case(elements, "basic")], ["trixie"])
    result = ft.run_case(case, _options(tmp_path, elements, log_dir=tmp_path / "logs"))
    assert result.status == ft.PASS, result
    assert seen["config"].environ["DIB_RELEASE"] == "trixie"
    assert result.id == "tiny/basic[trixie]"
    assert Path(result.log).name == "tiny--basic@trixie.log"
    assert "tiny/basic[trixie]" in ft.format_text([result])
    junit = ET.fromstring(ft.format_junit([result]))
    assert junit.find("testsuite/testcase").get("name") == "basic[trixie]"
    record = json.loads(ft.format_json([result]))["results"][0]
    assert (record["id"], record["case"], record["release"]) == \
        ("tiny/basic[trixie]", "basic", "trixie")


def test_cli_release_runs_each_case_per_release(elements_env, tmp_path, monkeypatch, capsys):
    elements_env.add("tiny")
    elements_env.add("tiny/test-elements/c1", deps=["tiny"])
    ran = []
    monkeypatch.setattr(ft, "run_case", lambda case, options: ran.append(case.id) or
                        ft.CaseResult(case.element, case.name, ft.PASS, release=case.release))
    # -j 1: the cases run in this process, where run_case is replaced
    assert dib_main(["test", "tiny", "--release", "bookworm,trixie", "-j", "1",
                     "--cache-dir", str(tmp_path / "c")]) == 0
    assert ran == ["tiny/c1[bookworm]", "tiny/c1[trixie]"]
    assert "2 case(s): 2 passed" in capsys.readouterr().out
    assert dib_main(["test", "tiny", "--release", "bookworm,trixie", "--list"]) == 0
    assert capsys.readouterr().out == "tiny/c1[bookworm]\ntiny/c1[trixie]\n"
    assert dib_main(["test", "--unit", "tiny", "--release", "trixie"]) == 2
    assert "--unit builds nothing" in capsys.readouterr().err


# -- unit tests and the command line -------------------------------------------------------


def test_run_unit_pass_fail_and_missing(tmp_path):
    from dib.elements.model import Element
    good = tmp_path / "good"
    (good / "tests").mkdir(parents=True)
    (good / "tests/test_ok.py").write_text("def test_ok():\n    assert True\n")
    bad = tmp_path / "bad"
    (bad / "tests").mkdir(parents=True)
    (bad / "tests/test_no.py").write_text("def test_no():\n    assert 1 == 2\n")
    (tmp_path / "none").mkdir()
    assert ft.run_unit(Element("good", good)).status == ft.PASS
    failed = ft.run_unit(Element("bad", bad))
    assert failed.status == ft.FAIL and "1 failed" in failed.reason
    assert "assert 1 == 2" in failed.details
    assert ft.run_unit(Element("none", tmp_path / "none")).status == ft.SKIP


def test_cli_unknown_element_exits_2(elements_env, capsys):
    assert dib_main(["test", "no-such-element"]) == 2
    assert "element 'no-such-element' not found" in capsys.readouterr().err


def test_cli_unit_writes_reports(elements_env, tmp_path, capsys):
    elements_env.add("withtests", files={"tests/test_a.py": "def test_a():\n    pass\n"})
    junit, js = tmp_path / "j.xml", tmp_path / "r.json"
    assert dib_main(["test", "--unit", "withtests", "--junit", str(junit),
                     "--json", str(js)]) == 0
    assert "withtests/unit" in capsys.readouterr().out
    assert ET.parse(junit).getroot().find("testsuite").get("name") == "withtests"
    assert json.loads(js.read_text())["summary"]["passed"] == 1


def test_cli_fails_with_1_when_a_case_fails(elements_env, tmp_path, monkeypatch, capsys):
    elements_env.add("tiny")
    elements_env.add("tiny/test-elements/c1", deps=["tiny"])
    monkeypatch.setattr(ft, "run_case", lambda case, options: ft.CaseResult(
        case.element, case.name, ft.FAIL, 1.0, reason="boom"))
    assert dib_main(["test", "tiny", "--cache-dir", str(tmp_path / "c")]) == 1
    assert "boom" in capsys.readouterr().out


def test_the_sentinel_is_the_file_dib_documents(tmp_path):
    # A test element's hook marks an expected failure with DIB's file; a
    # failed build's layers holding exactly that path are an expected failure.
    layer = tmp_path / "layer"
    (layer / "tmp").mkdir(parents=True)
    (layer / "tmp" / "dib-test-should-fail").write_text("")
    assert ft.sentinel_in_layers([layer])
    (layer / "tmp" / "dib-test-should-fail").rename(layer / "tmp" / "dib-test-should-pass")
    assert not ft.sentinel_in_layers([layer])


# -- booting the cases that ask for it ---------------------------------------------------


@pytest.fixture
def booted(monkeypatch):
    """Record the images the harness boots instead of starting qemu."""
    from dib.testing import boot as boot_module
    images = []

    def fake_boot(spec):
        images.append(spec.image)
        return boot_module.BootReport(image=spec.image, firmware="bios", expect="login:",
                                      reached=True, seconds=1.0)
    monkeypatch.setattr(boot_module, "boot", fake_boot)
    return images


@pytest.mark.parametrize("flag, boots", [(None, True), (False, False), (True, True)])
def test_a_case_whose_expect_yaml_has_boot_is_booted_unless_told_not_to(
        tmp_path, elements, fake_pipeline, booted, flag, boots):
    _outcome, seen = fake_pipeline
    case = _case(elements, "basic")
    (case.path / "expect.yaml").write_text("files_present: [/etc/tiny]\nboot:\n  timeout: 60\n")
    result = ft.run_case(case, _options(tmp_path, elements, boot=flag))
    config = seen["config"]
    assert ("vm" in config.elements, "qcow2" in config.image_types) == (boots, boots)
    assert len(booted) == (1 if boots else 0), result


@pytest.mark.parametrize("flag, boots", [(None, False), (True, True)])
def test_a_case_without_boot_is_booted_only_with_the_flag(tmp_path, elements, fake_pipeline,
                                                           booted, flag, boots):
    _outcome, seen = fake_pipeline
    ft.run_case(_case(elements, "basic"), _options(tmp_path, elements, boot=flag))
    assert ("vm" in seen["config"].elements) == boots
    assert len(booted) == (1 if boots else 0)
