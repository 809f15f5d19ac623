"""Go's log.Println for the Python examples: "2006/01/02 15:04:05 Sent 3" on stdout, flushed,
so that a parent reading the pipe sees each line at once (examples/go_log.hpp does the same)."""

import time


def log_println(*args: object) -> None:
    print(time.strftime("%Y/%m/%d %H:%M:%S"), *args, flush=True)
