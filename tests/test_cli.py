"""The `gateway` command: deterministic demo data, and help for every subcommand."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.main import build_parser, main
from gateway.data.demo import DATASETS, content_hash

GATEWAY = str(Path(sys.executable).parent / "gateway")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GATEWAY, *args], capture_output=True, text=True, timeout=120)


def demo_hashes(out: Path, seed: int) -> dict[str, str]:
    done = run("demo-data", "--out", str(out), "--seed", str(seed), "--scale", "0.01")
    assert done.returncode == 0, done.stderr
    listed = dict(line.split("\t") for line in done.stdout.splitlines())
    assert sorted(listed) == sorted(DATASETS)
    assert all(Path(path) == out / f"{name}.parquet" for name, path in listed.items())
    return {name: content_hash(Path(path)) for name, path in listed.items()}


def test_demo_data_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    first = demo_hashes(tmp_path / "a", 7)
    again = demo_hashes(tmp_path / "b", 7)
    other = demo_hashes(tmp_path / "c", 8)
    assert first == again
    assert all(first[name] != other[name] for name in first), "the seed must matter"


def subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every path of subcommands (`serve`, `policy check`, ...), read from the parser itself."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from subcommands(sub, (*prefix, name))


COMMANDS = list(subcommands(build_parser()))


def test_the_parser_has_the_documented_commands() -> None:
    assert {("serve",), ("demo-data",), ("policy", "check"), ("keys", "rotate"), ("audit", "verify"),
            ("audit", "checkpoint")} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_subcommand_has_help(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: gateway " + " ".join(command))


def test_the_installed_command_prints_help() -> None:
    done = run("--help")
    assert done.returncode == 0
    for name in {c[0] for c in COMMANDS}:
        assert name in done.stdout


def test_no_command_is_a_usage_error() -> None:
    done = run()
    assert done.returncode == 2 and "usage: gateway" in done.stderr and "Traceback" not in done.stderr


def test_main_in_process_leaves_the_callers_sigpipe_alone(tmp_path: Path) -> None:
    """Only the installed command dies quietly of SIGPIPE (`gateway ... | head`); `main()` called
    in a longer-lived process (these tests) must not make its next write to a closed socket fatal."""
    before = signal.getsignal(signal.SIGPIPE)
    assert main(["audit", "verify", "--state-dir", str(tmp_path / "none")]) != 0
    assert signal.getsignal(signal.SIGPIPE) == before


def test_the_installed_command_ends_quietly_when_its_reader_goes() -> None:
    head = subprocess.run(f"{GATEWAY} --help | head -c 1", shell=True, capture_output=True, text=True, timeout=120)
    assert head.returncode == 0 and "Traceback" not in head.stderr and "BrokenPipe" not in head.stderr
