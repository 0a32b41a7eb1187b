"""The phase cache: key derivation, publishing, damage detection and pruning."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path


from dib.cache import CacheStore, Checkpoints, keys, prune
from dib.cache.prune import prune_order
from dib.cache.store import listing_digest, walk_sorted
from dib.config.settings import SETTINGS as REGISTRY


def make_hooks(root: Path) -> Path:
    hooks = root / "hooks"
    for phase in ("root.d", "install.d", "finalise.d"):
        (hooks / phase).mkdir(parents=True)
    (hooks / "root.d" / "10-bootstrap").write_text("#!/bin/bash\necho root\n")
    (hooks / "install.d" / "50-install").write_text("#!/bin/bash\necho install\n")
    (hooks / "finalise.d" / "50-final").write_text("#!/bin/bash\necho final\n")
    (hooks / "environment.d").mkdir()
    (hooks / "environment.d" / "10-env.bash").write_text("export DIB_X=1\n")
    (hooks / "bin").mkdir()
    (hooks / "bin" / "install-packages").write_text("#!/bin/bash\n")
    (hooks / "static").mkdir()
    (hooks / "static" / "motd").write_text("hello\n")
    return hooks


SETTINGS = {"env:DIB_RELEASE": "bookworm", "env:ARCH": "amd64"}


def chain_keys(hooks: Path, settings=SETTINGS) -> dict[str, str]:
    out, parent = {}, None
    for phase in ("root.d", "install.d", "finalise.d"):
        parent = keys.key_for(parent, phase, keys.phase_inputs(hooks, phase, settings))
        out[phase] = parent
    return out


def test_same_inputs_give_the_same_keys(tmp_path):
    hooks = make_hooks(tmp_path)
    assert chain_keys(hooks) == chain_keys(hooks)


def test_changing_a_late_hook_keeps_earlier_keys(tmp_path):
    hooks = make_hooks(tmp_path)
    before = chain_keys(hooks)
    (hooks / "finalise.d" / "50-final").write_text("#!/bin/bash\necho changed\n")
    after = chain_keys(hooks)
    assert after["root.d"] == before["root.d"]
    assert after["install.d"] == before["install.d"]
    assert after["finalise.d"] != before["finalise.d"]


def test_changing_an_early_hook_changes_every_later_key(tmp_path):
    hooks = make_hooks(tmp_path)
    before = chain_keys(hooks)
    (hooks / "install.d" / "50-install").write_text("#!/bin/bash\necho other\n")
    after = chain_keys(hooks)
    assert after["root.d"] == before["root.d"]
    assert after["install.d"] != before["install.d"]
    assert after["finalise.d"] != before["finalise.d"]


def test_mode_of_a_hook_is_an_input(tmp_path):
    hooks = make_hooks(tmp_path)
    before = chain_keys(hooks)
    os.chmod(hooks / "install.d" / "50-install", 0o755)
    assert chain_keys(hooks)["install.d"] != before["install.d"]


def test_environment_d_changes_every_key(tmp_path):
    hooks = make_hooks(tmp_path)
    before = chain_keys(hooks)
    (hooks / "environment.d" / "10-env.bash").write_text("export DIB_X=2\n")
    after = chain_keys(hooks)
    assert all(after[p] != before[p] for p in after)


def test_a_helper_keys_the_bootstrap_only_when_the_bootstrap_names_it(tmp_path):
    hooks = make_hooks(tmp_path)
    before = chain_keys(hooks)
    (hooks / "bin" / "install-packages").write_text("#!/bin/bash\necho changed\n")
    after = chain_keys(hooks)
    assert after["root.d"] == before["root.d"]
    assert after["install.d"] != before["install.d"]
    (hooks / "root.d" / "10-bootstrap").write_text("#!/bin/bash\ninstall-packages x\n")
    named = chain_keys(hooks)
    (hooks / "bin" / "install-packages").write_text("#!/bin/bash\necho again\n")
    assert chain_keys(hooks)["root.d"] != named["root.d"]


def test_element_data_does_not_change_the_bootstrap_key(tmp_path):
    hooks = make_hooks(tmp_path)
    before = chain_keys(hooks)
    (hooks / "static" / "motd").write_text("changed\n")
    after = chain_keys(hooks)
    assert after["root.d"] == before["root.d"]
    assert after["install.d"] != before["install.d"]


def test_non_phase_d_directories_are_element_data(tmp_path):
    # A ramdisk builder (post-install.d) reads the elements' init.d,
    # binary-deps.d and udev.d: a change there must rebuild the ramdisk.
    hooks = make_hooks(tmp_path)
    (hooks / "init.d").mkdir()
    (hooks / "init.d" / "10-fragment").write_text("echo one\n")
    before = chain_keys(hooks)
    (hooks / "init.d" / "10-fragment").write_text("echo two\n")
    after = chain_keys(hooks)
    assert after["root.d"] == before["root.d"]
    assert after["install.d"] != before["install.d"]
    assert after["finalise.d"] != before["finalise.d"]


def test_settings_change_keys_and_volatile_variables_do_not():
    env = {"DIB_RELEASE": "bookworm", "ARCH": "amd64", "DIB_DEBUG_TRACE": "0",
           "DIB_ARGS": "-o a", "HOME": "/root", "DIB_IMAGE_SIZE": "2"}
    base = keys.settings_inputs(env, image_name="/out/img")
    assert keys.settings_inputs(dict(env, DIB_DEBUG_TRACE="2", DIB_ARGS="-o b", HOME="/x",
                                     DIB_IMAGE_SIZE="5"), image_name="/elsewhere/img") == base
    assert keys.settings_inputs(dict(env, DIB_RELEASE="trixie"), image_name="/out/img") != base
    assert keys.settings_inputs(dict(env, ARCH="arm64"), image_name="/out/img") != base
    # mmdebstrap and initramfs-tools read it, whatever the hooks name
    assert keys.settings_inputs(dict(env, SOURCE_DATE_EPOCH="1700000000"),
                                image_name="/out/img") != base
    assert keys.settings_inputs(dict(env, DIB_NEW="1"), image_name="/out/img") != base
    assert keys.settings_inputs(env, image_name="/out/other") != base


def test_uncacheable_hook_never_gives_the_same_key_twice(tmp_path):
    hooks = make_hooks(tmp_path)
    (hooks / "install.d" / "60-latest").write_text(
        "#!/bin/bash\n# dib-cache: never\ncurl -o /x https://example.invalid/latest\n")
    first, second = chain_keys(hooks), chain_keys(hooks)
    assert first["root.d"] == second["root.d"]
    assert first["install.d"] != second["install.d"]
    inputs = keys.phase_inputs(hooks, "install.d", SETTINGS)
    assert "60-latest" in keys.describe_change("uncacheable", {}, inputs)


def test_describe_change_names_the_file_or_variable():
    old = {"finalise.d/50-x": "a", "env:DIB_RELEASE": "bookworm"}
    new = {"finalise.d/50-x": "b", "env:DIB_RELEASE": "trixie", "finalise.d/60-y": "c"}
    changed = keys.changed_inputs(old, new)
    assert changed == ["env:DIB_RELEASE", "finalise.d/50-x", "finalise.d/60-y"]
    assert "DIB_RELEASE" in keys.describe_change("env:DIB_RELEASE", old, new)
    assert keys.describe_change("finalise.d/50-x", old, new) == "file finalise.d/50-x changed"
    assert keys.describe_change("finalise.d/60-y", old, new) == \
        "file finalise.d/60-y was added"


def make_layer(root: Path, name: str, content: str = "x") -> Path:
    layer = root / name
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "file").write_text(content)
    return layer


def test_publish_moves_the_layer_and_use_finds_it(tmp_path):
    store = CacheStore(tmp_path / "cache")
    layer = make_layer(tmp_path, "layer")
    entry = store.publish("k1", layer, {"step": "install", "parent": None})
    assert not layer.exists()
    assert (entry.layer / "etc" / "file").read_text() == "x"
    found = store.use("k1")
    assert found is not None and found.meta["step"] == "install"
    store.close()


def test_second_publish_of_a_key_keeps_the_first(tmp_path):
    store = CacheStore(tmp_path / "cache")
    store.publish("k1", make_layer(tmp_path, "a", "first"), {"step": "s"})
    entry = store.publish("k1", make_layer(tmp_path, "b", "second"), {"step": "s"})
    assert (entry.layer / "etc" / "file").read_text() == "first"
    store.close()


def test_damaged_entry_is_dropped_not_trusted(tmp_path):
    store = CacheStore(tmp_path / "cache")
    entry = store.publish("k1", make_layer(tmp_path, "a"), {"step": "s"})
    store.close()
    (entry.layer / "etc" / "file").write_text("corrupted and longer")
    assert store.use("k1") is None
    assert not (tmp_path / "cache" / "entries" / "k1").exists()


def test_half_written_store_is_invisible_and_swept(tmp_path):
    store = CacheStore(tmp_path / "cache")
    half = store.tmp_dir / "k9.123.456"
    (half / "layer").mkdir(parents=True)
    assert store.use("k9") is None
    assert list(store.entries()) == []
    old = time.time() - 7200
    os.utime(half, (old, old))
    store.sweep_staging()
    assert not half.exists()


def test_a_second_build_making_the_same_step_waits_then_reuses_it(tmp_path):
    first, second = CacheStore(tmp_path / "cache"), CacheStore(tmp_path / "cache")
    events: list[str] = []
    entered = threading.Event()

    def wait_for_first() -> None:
        entered.wait()
        with second.making("k1", "step install"):
            events.append("second in")
            found = second.use("k1")
            events.append(f"second found {found.meta['step'] if found else None}")

    waiter = threading.Thread(target=wait_for_first)
    waiter.start()
    with first.making("k1", "step install"):
        entered.set()
        waiter.join(timeout=0.5)
        assert waiter.is_alive(), "the second build did not wait"
        first.publish("k1", make_layer(tmp_path, "made"), {"step": "install"})
        events.append("first published")
    waiter.join(timeout=10)
    assert events == ["first published", "second in", "second found install"]
    first.close()
    second.close()


def test_different_keys_do_not_wait_for_each_other(tmp_path):
    store, other = CacheStore(tmp_path / "cache"), CacheStore(tmp_path / "cache")
    done = threading.Event()

    def make_other() -> None:
        with other.making("k2", "step finalise"):
            done.set()

    with store.making("k1", "step install"):
        threading.Thread(target=make_other).start()
        assert done.wait(timeout=10)


def test_old_locks_nobody_holds_are_swept_held_ones_kept(tmp_path):
    store = CacheStore(tmp_path / "cache")
    with store.making("idle", "step a"):
        pass
    old = time.time() - 7200
    with store.making("busy", "step b"):
        for name in ("idle", "busy"):
            os.utime(store.locks_dir / name, (old, old))
        CacheStore(tmp_path / "cache").sweep_staging()
        assert sorted(p.name for p in store.locks_dir.iterdir()) == ["busy"]


def _entry(store, tmp_path, key, parent, used_at, size_text="x" * 10):
    entry = store.publish(key, make_layer(tmp_path, f"l-{key}", size_text),
                          {"step": key, "parent": parent})
    store.close()
    os.utime(entry.path / "used", (used_at, used_at))
    return store.get(key)


def test_prune_order_is_least_recently_used_first_children_before_parents(tmp_path):
    store = CacheStore(tmp_path / "cache")
    now = time.time()
    a = _entry(store, tmp_path, "a", None, now - 100)
    b = _entry(store, tmp_path, "b", "a", now - 100)
    c = _entry(store, tmp_path, "c", None, now - 10)
    assert [e.key for e in prune_order([a, b, c])] == ["b", "a", "c"]


def test_prune_by_size_removes_least_recently_used_and_orphans(tmp_path):
    store = CacheStore(tmp_path / "cache")
    now = time.time()
    _entry(store, tmp_path, "old", None, now - 1000)
    _entry(store, tmp_path, "child", "old", now - 5)
    _entry(store, tmp_path, "new", None, now - 1)
    sizes = {e.key: e.size for e in store.entries()}
    result = prune(store, max_size=sizes["new"] + sizes["child"], now=now)
    left = {e.key for e in store.entries()}
    # "old" goes for size; "child" is useless without it.
    assert left == {"new"}
    assert {e.key for e in result.removed} == {"old", "child"}


def test_prune_by_age(tmp_path):
    store = CacheStore(tmp_path / "cache")
    now = time.time()
    _entry(store, tmp_path, "stale", None, now - 8 * 86400)
    _entry(store, tmp_path, "fresh", None, now - 60)
    prune(store, max_size=None, max_age=7 * 86400, now=now)
    assert {e.key for e in store.entries()} == {"fresh"}


def test_entries_in_use_are_not_pruned(tmp_path):
    store = CacheStore(tmp_path / "cache")
    _entry(store, tmp_path, "busy", None, time.time() - 1000)
    holder = CacheStore(tmp_path / "cache")
    assert holder.use("busy") is not None
    prune(store, max_size=0)
    assert {e.key for e in store.entries()} == {"busy"}
    holder.close()
    prune(store, max_size=0)
    assert list(store.entries()) == []


def test_checkpoints_explain_what_changed(tmp_path):
    hooks = make_hooks(tmp_path)
    store = CacheStore(tmp_path / "cache")
    chain = Checkpoints(store)
    chain.settings = dict(SETTINGS)
    inputs = chain.phase_inputs(hooks, "finalise")
    key = chain.key("finalise", inputs)
    assert chain.why_rebuilt("finalise", inputs) == "no entry for this step yet"
    chain.store_layer(key, "finalise", inputs, make_layer(tmp_path, "L"), None, hooks, "b1")
    chain.close()
    (hooks / "finalise.d" / "50-final").write_text("#!/bin/bash\necho new\n")
    again = Checkpoints(store)
    again.settings = dict(SETTINGS)
    new_inputs = again.phase_inputs(hooks, "finalise")
    assert again.why_rebuilt("finalise", new_inputs) == "file finalise.d/50-final changed"


def test_image_name_is_an_input_only_where_a_hook_mentions_it(tmp_path):
    hooks = make_hooks(tmp_path)
    (hooks / "finalise.d" / "99-manifest").write_text(
        '#!/bin/bash\ntouch "/etc/manifest-$(basename $IMAGE_NAME)"\n')

    def keys_for(image):
        env = {"DIB_RELEASE": "bookworm", "DIB_MANIFEST_SAVE_DIR": f"{image}.d/"}
        return chain_keys(hooks, keys.settings_inputs(env, image_name=image))
    first, second = keys_for("/out/one"), keys_for("/elsewhere/two")
    assert first["root.d"] == second["root.d"]
    assert first["install.d"] == second["install.d"]
    assert first["finalise.d"] != second["finalise.d"]


def test_a_variable_counts_only_for_phases_that_name_it(tmp_path):
    hooks = make_hooks(tmp_path)
    (hooks / "install.d" / "60-user").write_text(
        '#!/bin/bash\necho "$DIB_DEV_USER_PASSWORD" > /etc/pw\n')

    def keys_for(password):
        env = {"DIB_RELEASE": "bookworm", "DIB_DEV_USER_PASSWORD": password}
        return chain_keys(hooks, keys.settings_inputs(env, image_name="/out/img"))
    first, second = keys_for("one"), keys_for("two")
    assert first["root.d"] == second["root.d"]
    assert first["install.d"] != second["install.d"]
    (hooks / "environment.d" / "20-more.bash").write_text(
        "export DIB_OTHER=${DIB_DEV_USER_PASSWORD}-x\n")
    assert keys_for("one")["root.d"] != keys_for("two")["root.d"]


def test_a_variable_named_in_a_file_hooks_source_counts(tmp_path):
    hooks = make_hooks(tmp_path)
    (hooks / "lib").mkdir()
    (hooks / "lib" / "common.sh").write_text('greeting="${DIB_GREETING:-hi}"\n')

    def keys_for(greeting):
        env = {"DIB_RELEASE": "bookworm", "DIB_GREETING": greeting}
        return chain_keys(hooks, keys.settings_inputs(env, image_name="/out/img"))
    first, second = keys_for("hello"), keys_for("bye")
    assert first["root.d"] == second["root.d"]
    assert first["install.d"] != second["install.d"]


def test_a_rerun_step_that_writes_the_same_files_lets_later_steps_be_reused(tmp_path):
    store = CacheStore(tmp_path / "cache")

    def build(extra_input: str, content: str) -> tuple[str, bool]:
        chain = Checkpoints(store)
        inputs = {"file:extra-data.d/10-copy": extra_input}
        key = chain.key("extra-data", inputs)
        if chain.lookup(key, tmp_path) is None:
            layer = make_layer(tmp_path, f"layer-{extra_input}-{content}", content)
            chain.store_layer(key, "extra-data", inputs, layer, None, tmp_path, "b")
        next_key = chain.key("install", {"file:install.d/50": "same"})
        chain.close()
        return next_key, store.get(next_key) is not None

    first, _ = build("v1", "copied")
    second, _ = build("v2", "copied")       # the hook changed, its output did not
    third, _ = build("v3", "different")     # now the output changed too
    assert second == first
    assert third != first


def test_settings_that_do_not_shape_the_tree_do_not_key_it():
    env = {"DIB_RELEASE": "bookworm"}
    base = keys.settings_inputs(env, image_name="/out/img")
    for setting in REGISTRY:
        if not setting.env or not setting.env.startswith("DIB_"):
            continue
        changed = keys.settings_inputs(dict(env, **{setting.env: "42"}), image_name="/out/img")
        if setting.affects_tree:
            assert changed != base, f"{setting.env} shapes the tree but does not key it"
        else:
            assert changed == base, f"{setting.env} does not shape the tree but keys it"


# -- the bootstrap's key, from the values environment.d gives -----------------------------


def bootstrap_key(hooks: Path, **caller) -> str:
    """root.d's key as a build makes it: environment.d really sourced."""
    from dib.runtime.environment import sourced_environment
    env = sourced_environment(hooks, {"PATH": os.environ["PATH"], "ARCH": "amd64",
                                      "DIB_RELEASE": "bookworm",
                                      "TMP_BUILD_DIR": "/var/tmp/dib-build-a",
                                      "TARGET_ROOT": "/var/tmp/dib-build-a/mnt",
                                      "IMAGE_NAME": "/out/img", **caller})
    settings = keys.settings_inputs(env, image_name=env["IMAGE_NAME"])
    return keys.key_for(None, "root.d",
                        keys.phase_inputs(hooks, "root.d", settings, environment=env))


def test_environment_d_the_bootstrap_does_not_read_leaves_its_key(tmp_path):
    hooks = make_hooks(tmp_path)
    before = bootstrap_key(hooks)
    (hooks / "environment.d" / "20-later.bash").write_text(
        "export DIB_GRUB_TIMEOUT=0\nexport MOTD_TEXT=hello\n")
    assert bootstrap_key(hooks) == before
    # in another workspace, for another image, the same bootstrap
    assert bootstrap_key(hooks, TMP_BUILD_DIR="/var/tmp/dib-build-b",
                         TARGET_ROOT="/var/tmp/dib-build-b/mnt",
                         IMAGE_NAME="/elsewhere/other") == before


def test_values_the_bootstrap_reads_key_it_whoever_sets_them(tmp_path):
    hooks = make_hooks(tmp_path)
    (hooks / "root.d" / "10-bootstrap").write_text(
        '#!/bin/bash\nfetch "$BASE_IMAGE_URL" "$DIB_MIRROR_PATH" "$TARGET_ROOT"\npick_arch\n')
    env_file = hooks / "environment.d" / "20-base.bash"

    def key_with(text: str, **caller: str) -> str:
        env_file.write_text(text)
        return bootstrap_key(hooks, **caller)
    plain = key_with("export BASE_IMAGE_URL=http://images.invalid/a.qcow2\n")
    # a non-DIB variable environment.d exports
    assert key_with("export BASE_IMAGE_URL=http://images.invalid/b.qcow2\n") != plain
    # a DIB_ variable environment.d derives from the caller's
    derived = "export BASE_IMAGE_URL=http://images.invalid/a.qcow2\n" \
              "export DIB_MIRROR_PATH=/debian/${DIB_FLAVOUR:-main}\n"
    assert key_with(derived, DIB_FLAVOUR="main") != key_with(derived, DIB_FLAVOUR="backports")
    # an exported function the bootstrap calls
    function = "export BASE_IMAGE_URL=http://images.invalid/a.qcow2\n" \
               "pick_arch() { echo %s; }\nexport -f pick_arch\n"
    assert key_with(function % "amd64") != key_with(function % "arm64")
    # not a variable it reads
    assert key_with("export BASE_IMAGE_URL=http://images.invalid/a.qcow2\n"
                    "export UNRELATED=1\n") == plain


def test_a_change_is_explained_against_the_same_tree_not_another_builds(tmp_path):
    hooks = make_hooks(tmp_path)
    store = CacheStore(tmp_path / "cache")

    def on_tree(name: str) -> Checkpoints:
        """Checkpoints of a build whose install step made tree ``name``."""
        chain = Checkpoints(store)
        chain.settings = dict(SETTINGS)
        install = dict(chain.phase_inputs(hooks, "install"), tree=name)
        key = chain.key("install", install)
        if chain.lookup(key, hooks) is None:
            chain.store_layer(key, "install", install, make_layer(tmp_path, f"i-{name}"),
                              None, hooks, name)
        return chain
    ours = on_tree("a")
    inputs = ours.phase_inputs(hooks, "finalise")
    ours.store_layer(ours.key("finalise", inputs), "finalise", inputs,
                     make_layer(tmp_path, "A"), None, hooks, "ours")
    ours.close()
    # another build, on another tree, makes the step later with other inputs
    theirs = on_tree("b")
    other = dict(inputs, **{"setting:image-name": "theirs"})
    theirs.store_layer(theirs.key("finalise", other), "finalise", other,
                       make_layer(tmp_path, "B"), None, hooks, "theirs")
    theirs.close()
    (hooks / "finalise.d" / "50-final").write_text("#!/bin/bash\necho new\n")
    again = on_tree("a")
    assert again.why_rebuilt("finalise", again.phase_inputs(hooks, "finalise")) == \
        "file finalise.d/50-final changed"


def test_the_callers_variables_key_the_bootstrap_by_digest_only(tmp_path):
    hooks = make_hooks(tmp_path)
    (hooks / "root.d" / "10-bootstrap").write_text(
        '#!/bin/bash\necho "Acquire::http::Proxy \\"$http_proxy\\";" > "$TARGET_ROOT/proxy"\n')
    from dib.runtime.environment import sourced_environment
    secret = "http://builder:s3cret@proxy.invalid:3128"
    env = sourced_environment(hooks, {"PATH": os.environ["PATH"], "http_proxy": secret})
    inputs = keys.phase_inputs(hooks, "root.d", {}, environment=env)
    assert "env:http_proxy" in inputs
    assert all("s3cret" not in value for value in inputs.values())
    other = sourced_environment(hooks, {"PATH": os.environ["PATH"], "http_proxy": secret + "0"})
    assert keys.phase_inputs(hooks, "root.d", {}, environment=other) != inputs


def test_walk_lists_each_directory_by_name_then_descends_without_following_links(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "b" / "c" / "f").write_text("f")
    (tmp_path / "b" / "a").write_text("a")
    (tmp_path / "a.txt").write_text("t")
    (tmp_path / "link").symlink_to("b")
    (tmp_path / "z").mkdir()
    names = [rel for rel, _path, _st in walk_sorted(tmp_path)]
    assert names == ["a.txt", "b", "link", "z", "b/a", "b/c", "b/c/f"]


def test_the_listing_digest_follows_what_lstat_says(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("one")
    (tmp_path / "l").symlink_to("d/f")
    first, size = listing_digest(tmp_path)
    assert size > 0 and listing_digest(tmp_path)[0] == first
    os.utime(tmp_path / "d" / "f", ns=(0, 5))
    second = listing_digest(tmp_path)[0]
    (tmp_path / "l").unlink()
    (tmp_path / "l").symlink_to("d")
    assert len({first, second, listing_digest(tmp_path)[0]}) == 3
