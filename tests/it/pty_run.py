#!/usr/bin/env python3
"""Runs a command with its stderr (and with --stdout-tty its stdout too) on
a pseudo-terminal of COLUMNS columns, as a person's terminal would be, and
prints one JSON object: what the terminal showed, what a piped stdout got,
and the exit status.

Usage: pty_run.py [--stdout-tty] [--columns N] -- COMMAND [ARG ...]
"""
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios


def main():
    args = sys.argv[1:]
    stdout_tty = "--stdout-tty" in args
    columns = 100
    if "--columns" in args:
        columns = int(args[args.index("--columns") + 1])
    command = args[args.index("--") + 1:]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=slave,
                             stdout=slave if stdout_tty else subprocess.PIPE)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    piped = b"" if stdout_tty else child.stdout.read()
    status = child.wait()
    print(json.dumps({"terminal": shown.decode("utf-8", "replace"),
                      "stdout": piped.decode("utf-8", "replace"), "status": status}))


if __name__ == "__main__":
    main()
