"""The command line as a user runs it: a subprocess of the installed console script."""

import subprocess

import resnet_spec as rs
from conftest import assert_imports_none_of

from conftest import CLI_SCRIPT as SCRIPT  # noqa: E402


def run(*args):
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True)


def test_list_prints_every_variant_with_its_published_count():
    out = run("list")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[2:]}
    assert list(rows) == rs.names()
    assert rows["resnet50"][4] == "25,557,032"
    assert rows["resnest50"][1] == "resnest"


def test_list_by_family_and_bad_family():
    out = run("list", "--family", "cifar")
    assert [line.split()[0] for line in out.stdout.splitlines()[2:]] == rs.names("cifar")
    bad = run("list", "--family", "transformers")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "Traceback" not in bad.stderr


def test_list_needs_neither_framework():
    assert_imports_none_of("from parity.cli import main; main(['list'])", ("torch", "tensorflow", "keras"))
