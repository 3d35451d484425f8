import pytest

from tessy_dagster.storage import atomic_dir, build_artifact, digest_dir, read_manifest, reusable_manifest


def test_a_failed_write_leaves_the_previous_artifact_intact(tmp_path):
    target = tmp_path / "asset" / "all"
    build_artifact(target, inputs={}, settings={"a": 1}, code_version="1",
                   build=lambda d: (d / "x.txt").write_text("old") and {})
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "x.txt").write_text("half")
            raise RuntimeError("crash")
    assert (target / "x.txt").read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["all"]  # no temporary folders left behind


def test_manifest_digest_and_reuse(tmp_path):
    target = tmp_path / "a"
    manifest = build_artifact(target, inputs={"up": {"digest": "d"}}, settings={"s": 1}, code_version="1",
                              build=lambda d: (d / "f").write_text("v") and {"n": 1})
    assert manifest["digest"] == digest_dir(target) == read_manifest(target)["digest"]
    assert reusable_manifest(target, {"up": {"digest": "d"}}, {"s": 1}, "1") is not None
    assert reusable_manifest(target, {"up": {"digest": "other"}}, {"s": 1}, "1") is None
    assert reusable_manifest(target, {"up": {"digest": "d"}}, {"s": 2}, "1") is None
    (target / "f").write_text("tampered")
    assert reusable_manifest(target, {"up": {"digest": "d"}}, {"s": 1}, "1") is None


def test_missing_manifest_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="materialize"):
        read_manifest(tmp_path / "nothing")


def test_manifest_names_each_files_digest_and_keeps_the_folder_digest(tmp_path):
    """Per-file digests (for an audit to name the changed file) beside the folder digest, which stays the same
    sha256 over names and bytes as before (existing data versions do not change)."""
    import hashlib

    target = tmp_path / "a"

    def build(d):
        (d / "sub").mkdir()
        (d / "sub" / "f.txt").write_text("v")
        (d / "g.bin").write_bytes(b"\x00\x01")
        return {}

    manifest = build_artifact(target, inputs={}, settings={}, code_version="1", build=build)
    assert manifest["files"] == {"g.bin": hashlib.sha256(b"\x00\x01").hexdigest(),
                                 "sub/f.txt": hashlib.sha256(b"v").hexdigest()}
    folder = hashlib.sha256(b"g.bin" + b"\x00\x01" + b"sub/f.txt" + b"v").hexdigest()
    assert manifest["digest"] == digest_dir(target) == folder
