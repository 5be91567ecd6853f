"""Files only you can change (issue 35): every directory streamchat creates is 0700 and every file
it writes 0600 under any umask; a config another user could change is refused, as ssh refuses one."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import STREAMCHAT, base_env

from streamchat.errors import UnsafePermissionsError
from streamchat.exit_status import ExitStatus
from streamchat.private_files import (
    ensure_private_file,
    private_dir,
    refuse_if_others_can_write,
    write_named,
    write_private,
)

MCP_SERVER = str(Path(__file__).parent / "mcp_files_server.py")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def run_with_umask(umask: int, args: list[str], env: dict[str, str], stdin: bytes | None = None):
    return subprocess.run([STREAMCHAT, *args], input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, env=env, timeout=60, umask=umask)


def fresh_env(home: Path, server) -> dict[str, str]:
    """The defaults: config, roles, keys and the log in the XDG directories, none of which exist yet."""
    env = base_env(home, server, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    del env["STREAMCHAT_CONFIG"], env["STREAMCHAT_DB"], env["OPENAI_API_KEY"]
    return env


@pytest.mark.parametrize("umask", [0o000, 0o022], ids=["umask000", "umask022"])
def test_every_directory_created_is_0700_and_every_file_0600_whatever_the_umask(server, home, umask):
    env = fresh_env(home, server)
    steps = [
        (["config", "init"], None),
        (["keys", "set", "openai"], b"sk-private-files-key-123456\n"),
        (["--save-role", "mine", "-s", "be terse", "-m", "openai:echo"], None),
        (["models", "openai"], None),
        (["-m", "openai:echo", "--tools", "files", "q"], None),
    ]
    config = home / "config" / "streamchat" / "config.toml"
    for args, stdin in steps:
        done = run_with_umask(umask, args, env, stdin)
        assert done.returncode == 0, (args, done.stderr)
        if args == ["config", "init"]:  # an MCP server, so its log is written too
            with config.open("a") as handle:
                handle.write(f'\n[mcp.files]\ncommand = "{sys.executable}"\nargs = ["{MCP_SERVER}", "{home}"]\n')
    written = {p.relative_to(home).as_posix(): mode(p) for top in ("config", "data") for p in [home / top,
               *(home / top).rglob("*")]}
    for name in ("config/streamchat/keys.json", "config/streamchat/roles/mine.toml", "data/streamchat/log.db",
                 "data/streamchat/mcp/files.log", "data/streamchat/models-cache.json"):
        assert name in written
    assert {name: m for name, m in written.items() if m != (0o700 if (home / name).is_dir() else 0o600)} == {}


@pytest.mark.parametrize("loosen", ["file", "dir"])
def test_a_config_others_can_write_is_refused_and_its_command_never_runs(server, home, loosen):
    env = fresh_env(home, server)
    marker = home / "ran"
    folder = home / "config" / "streamchat"
    folder.mkdir(parents=True)
    config = folder / "config.toml"
    config.write_text(f'[providers.openai]\napi_key_cmd = ["touch", "{marker}"]\n')
    loose = config if loosen == "file" else folder
    loose.chmod(0o666 if loosen == "file" else 0o777)
    done = run_with_umask(0o022, ["-m", "openai:echo", "q"], env)
    err = done.stderr.decode()
    assert done.returncode == ExitStatus.UNSAFE == 12 and not marker.exists() and not server.requests
    assert err == f"error: {loose} can be changed by other users, so streamchat will not use it — run: chmod go-w {loose}\n"
    loose.chmod(0o600 if loosen == "file" else 0o700)
    assert run_with_umask(0o022, ["-m", "openai:echo", "q"], env).returncode == 3  # the command ran (and gave no key)
    assert marker.exists()


def test_sticky_directories_and_this_users_files_pass(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: others cannot replace an entry of yours
    config = shared / "streamchat.toml"
    config.write_text("")
    config.chmod(0o644)
    refuse_if_others_can_write([config])
    config.chmod(0o646)
    with pytest.raises(UnsafePermissionsError, match="chmod go-w"):
        refuse_if_others_can_write([config])


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a file away")
def test_a_config_owned_by_another_user_is_refused(tmp_path):
    config = tmp_path / "streamchat.toml"
    config.write_text("")
    os.chown(config, 4321, -1)
    with pytest.raises(UnsafePermissionsError, match="chown 0"):
        refuse_if_others_can_write([config])



@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a file away and to make a device")
def test_a_named_file_not_ours_or_a_device_keeps_its_mode_and_gets_the_text(tmp_path):
    """`/save! FILE` tightens only a file of the user's own: it made a copy of /dev/null (as root) and
    another user's shared file 0600; without root that chmod failed after the file was emptied."""
    shared = tmp_path / "shared.md"
    shared.write_text("old notes, longer than what replaces them\n")
    os.chown(shared, 4321, -1)
    shared.chmod(0o666)
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    null.chmod(0o666)
    write_named(shared, "new\n")
    write_named(null, "into nothing\n")
    assert (mode(shared), mode(null)) == (0o666, 0o666)
    assert shared.read_text() == "new\n"
    mine = tmp_path / "mine.md"
    mine.write_text("a longer text than the new one\n")
    mine.chmod(0o644)
    write_named(mine, "short\n")
    assert mode(mine) == 0o600 and mine.read_text() == "short\n"

def test_private_helpers_set_modes_under_umask_000(tmp_path):
    old = os.umask(0)
    try:
        deep = private_dir(tmp_path / "a" / "b")
        write_private(deep / "f.json", "{}")
        log = ensure_private_file(deep / "log.db")
        loose = tmp_path / "old.log"
        loose.write_text("x")
        loose.chmod(0o644)
        ensure_private_file(loose)
    finally:
        os.umask(old)
    assert (mode(tmp_path / "a"), mode(deep), mode(deep / "f.json"), mode(log), mode(loose)) == (
        0o700, 0o700, 0o600, 0o600, 0o600)
    assert loose.read_text() == "x" and [p.name for p in deep.iterdir()] != []


def test_the_log_and_its_wal_are_0600_in_a_0700_directory_even_when_an_older_version_left_them_open(invoke, server, home):
    env = base_env(home, server)
    del env["STREAMCHAT_DB"]  # the default place, in streamchat's own data directory
    folder = home / "data" / "streamchat"
    folder.mkdir(parents=True, mode=0o755)
    log = folder / "log.db"
    sqlite3.connect(log).close()  # as an earlier streamchat left it under umask 022
    for path in (log, Path(f"{log}-wal")):
        path.touch()
        path.chmod(0o644)
    assert invoke("-m", "openai:echo", "q", env=env).code == 0
    reader = sqlite3.connect(log)  # held open, so the -wal and -shm made by this write stay
    try:
        reader.execute("PRAGMA journal_mode")
        reader.execute("INSERT INTO conversations (created_at, updated_at) VALUES (0, 0)")
        modes = {p.name: mode(p) for p in folder.iterdir()}
    finally:
        reader.close()
    assert mode(folder) == 0o700
    assert modes == {"log.db": 0o600, "log.db-wal": 0o600, "log.db-shm": 0o600}


def test_keys_json_replaces_a_planted_symlink_instead_of_writing_through_it(server, home):
    env = fresh_env(home, server)
    folder = home / "config" / "streamchat"
    folder.mkdir(parents=True, mode=0o700)
    victim = home / "victim.txt"
    victim.write_text("precious\n")
    (folder / "keys.json").symlink_to(victim)
    done = run_with_umask(0o022, ["keys", "set", "openai"], env, b"sk-planted-link-key-123456\n")
    assert done.returncode == 0, done.stderr
    keys = folder / "keys.json"
    assert victim.read_text() == "precious\n"
    assert not keys.is_symlink() and mode(keys) == 0o600 and "sk-planted-link-key-123456" in keys.read_text()
    assert sorted(p.name for p in folder.iterdir()) == ["keys.json", "stored_keys"]  # no temp file left beside them
